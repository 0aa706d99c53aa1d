"""The PostgreSQL adapter: ``calliope.open("postgresql://...", schema="calliope")``.

Every port on tables in one schema (schema.py); psycopg 3 with a connection
pool (the extra ``calliope[postgres]``).
"""
