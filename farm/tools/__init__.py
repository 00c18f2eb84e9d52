"""Tools beside the product: the benchmark, the chaos run, and deliberate faults for
the tests. The product never imports them."""
