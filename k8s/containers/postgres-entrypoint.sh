#!/bin/bash
# The stand-in postgres image's entrypoint: the official image's contract, written anew
# for what the chart relies on. On an empty PGDATA: initdb as the running user with
# POSTGRES_USER/POSTGRES_PASSWORD, password auth for remote hosts, POSTGRES_DB created
# through a socket-only temporary server. Then the server replaces this shell (PID 1).
set -euo pipefail

if [ "${1:-}" = postgres ]; then
	user="${POSTGRES_USER:-postgres}"
	db="${POSTGRES_DB:-$user}"
	mkdir -p "$PGDATA"
	chmod 700 "$PGDATA"
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (the chart takes it from a Secret)}"
		initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
			--auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA"
		printf 'host all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"
		pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p ${PGPORT:-5432}" start
		if [ "$db" != postgres ]; then
			psql -v ON_ERROR_STOP=1 --username="$user" --dbname=postgres \
				--set=db="$db" <<<'CREATE DATABASE :"db";'
		fi
		pg_ctl -D "$PGDATA" -m fast -w stop
		echo 'stand-in entrypoint: database initialised'
	fi
fi
exec "$@"
