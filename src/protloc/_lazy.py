"""The one lazy re-export mechanism (PEP 562) of protloc's packages.

A package lists ``public name -> defining module`` in an ``_EXPORTS`` table and gets
its ``__getattr__`` and ``__dir__`` from :func:`lazy_exports`, so that importing the
package imports none of the modules (and none of torch, timm, cellpose, matplotlib).
"""

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package, exports):
    """``(__getattr__, __dir__)`` for ``package`` re-exporting ``exports`` lazily.

    A name is imported on first access and then kept in the package's namespace.

    Examples
    --------
    >>> getattr_, dir_ = lazy_exports("protloc", {"load_hpa": "protloc.io"})
    >>> getattr_("load_hpa").__name__
    'load_hpa'
    """
    namespace = importlib.import_module(package).__dict__

    def __getattr__(name):
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
