from workers.order.worker import main

main()
