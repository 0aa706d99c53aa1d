"""The demo that ``calliope demo`` runs: a shopping cart edited by several
processes (:mod:`calliope.demo.story`), with the modules each process runs.

Its modules are examples as much as a demo: :mod:`calliope.demo.cart` (events,
state, fold), :mod:`calliope.demo.replicated_cart` (a replica resolving
conflicts), :mod:`calliope.demo.counter_replica` (the replicator),
:mod:`calliope.demo.cart_totals` (a projection across carts).
"""
