"""The exception and warning hierarchy of mlsafety.

Every error raised for bad user input derives from :class:`MLSafetyError`, so callers can
catch one type; each also derives from the builtin it refines (``ValueError``, ...), so
code written against the builtins keeps working. Messages follow one template:
"`<param>` of <Owner> must be <constraint>; got <value>. <How to fix.>"
"""

from __future__ import annotations


class MLSafetyError(Exception):
    """Root of all mlsafety errors."""


class InvalidParameterError(MLSafetyError, ValueError):
    """A hyperparameter or argument is outside its allowed range."""


class InvalidInputError(MLSafetyError, ValueError):
    """Input data (images, labels, logits) is malformed: NaN, wrong range, wrong dtype."""


class ShapeError(InvalidInputError):
    """An array or tensor has the wrong number of dimensions or the wrong size."""


class NotFittedError(MLSafetyError, AttributeError):
    """A method that needs ``fit`` was called before it."""


class UnknownMethodError(MLSafetyError, ValueError):
    """A registry lookup failed; the message suggests close names."""


class UnsafeModelFileError(MLSafetyError):
    """A model file would need arbitrary code execution (an unrestricted pickle) to load."""


class DataNotFoundError(MLSafetyError, FileNotFoundError):
    """A data set or file was not found; the message says how to get it."""


class MLSafetyWarning(UserWarning):
    """A problem the user can fix, but which does not stop the computation."""


def parameter_error(
    param: str, owner: str, constraint: str, value: object, fix: str = ""
) -> InvalidParameterError:
    """Build an :class:`InvalidParameterError` with the house message template."""
    message = f"`{param}` of {owner} must be {constraint}; got {value!r}."
    if fix:
        message += f" {fix}"
    return InvalidParameterError(message)
