from workers.shipping.worker import main

main()
