__version__ = "0.1.0"


def __getattr__(name: str):
    "`lynx_lite.load` (from `lynx_lite.loading`), imported on first use: `import lynx_lite` stays cheap."
    if name == "load":
        from .loading import load

        return load
    raise AttributeError(f"module 'lynx_lite' has no attribute {name!r}")
