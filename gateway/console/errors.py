"""The console's errors: one tree, each with the HTTP status and the title of the page that shows it.

Messages are read by the person at the screen and written to the console trail, so they never hold
a personal identifier (a typed national ID is never echoed back).
"""

from __future__ import annotations


class ConsoleError(Exception):
    """A console failure shown as a page with a status code and a sentence without personal data."""

    status = 500
    title = "Something went wrong"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConsoleConfigError(ConsoleError):
    """The console's settings or its secret or trail database are unusable: the node does not start."""

    title = "Console not configured"


class WeakPassword(ConsoleError):
    """A new password too short to survive a guessing attack on a leaked configuration."""

    status = 400
    title = "Password too weak"


class NotSignedIn(ConsoleError):
    status = 401
    title = "Please sign in"


class SignInFailed(ConsoleError):
    status = 401
    title = "Sign-in failed"


class TooManyAttempts(ConsoleError):
    status = 429
    title = "Too many failed sign-ins"


class Forbidden(ConsoleError):
    """The page or action exists but the signed-in role may not use it (separation of functions)."""

    status = 403
    title = "Not for your role"


class CsrfRejected(ConsoleError):
    """A form that did not come from this console's own page (or came from an expired one)."""

    status = 403
    title = "Form not accepted"


class BadInput(ConsoleError):
    status = 400
    title = "Please check the form"


class NotFound(ConsoleError):
    status = 404
    title = "Not found"


class NotHosted(NotFound):
    """A page for something this node does not run (the registry, a consent registry)."""

    title = "Not on this gateway"


class SourceFailed(ConsoleError):
    """An agency did not answer a look-up made through the exchange layer."""

    status = 502
    title = "A source did not answer"


class TrailFailed(ConsoleError):
    """The console trail could not be written: fail closed, the result is not shown."""

    title = "The console trail could not be written"
