"""What can go wrong with a store's schema, said so that an operator knows the command that fixes it."""

from __future__ import annotations


class MigrationError(Exception):
    """A schema could not be read or migrated."""


class UnknownStore(MigrationError):
    """A store name that Kiungo does not have."""


class SchemaNotCurrent(MigrationError):
    """A database is behind (or ahead of) the schema this version of Kiungo needs."""
