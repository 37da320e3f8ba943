"""Feature crosses written as formulas, e.g. ``"user_age * item_price"``."""

import sympy


def parse_cross(expression, columns):
    """Compile a cross formula into a function of named feature columns."""
    symbols = {name: sympy.Symbol(name) for name in columns}
    formula = sympy.sympify(expression, locals=symbols)
    return sympy.lambdify([symbols[name] for name in columns], formula, "numpy")
