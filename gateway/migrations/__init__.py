"""Schema migrations of every durable store (Alembic), and the check that a node's databases are current.

Each store is its own Alembic history with its own version table, so stores may share one database
(PostgreSQL in production) or live in separate files (SQLite, the embedded default).
"""

from gateway.migrations.errors import MigrationError, SchemaNotCurrent, UnknownStore
from gateway.migrations.nodedb import NodeDatabase, check_node, node_databases, upgrade_node
from gateway.migrations.runner import SchemaState, state, upgrade
from gateway.migrations.stores import STORES, Store

__all__ = [
    "STORES",
    "MigrationError",
    "NodeDatabase",
    "SchemaNotCurrent",
    "SchemaState",
    "Store",
    "UnknownStore",
    "check_node",
    "node_databases",
    "state",
    "upgrade",
    "upgrade_node",
]
