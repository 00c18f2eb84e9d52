"""Tools beside the product: the benchmark, the chaos run, and deliberate faults for
the tests. The product never imports them."""


def timed(function) -> float:
    """Seconds `function()` takes (a benchmark's stopwatch)."""
    import time

    started = time.perf_counter()
    function()
    return time.perf_counter() - started
