"""The one exception type for problems a user can cause and fix."""

__all__ = ["UserError"]


class UserError(Exception):
    """A readable problem with the user's input (file, folder, range, setting).

    Pages show it with ``st.error`` and keep running; the CLI prints it as one
    line on stderr and exits with status 2.  The message names the offending
    file, argument or value.
    """
