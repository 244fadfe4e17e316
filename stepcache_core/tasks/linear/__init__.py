"""The linear-equation task family, one module per stage, in request order:

- `spec`: `LinearSpec`, the equation a prompt asks to solve;
- `parse`: detection, prompt -> `LinearSpec` (`detect_linear`);
- `compare`: how a new request differs from a cached one (`compare_specs`) and its lookup shapes;
- `transfer`: a cached step renamed and restated for the new equation; `renumber` re-instantiates
  the numbers of a derivation whose equation kept its signed skeleton (`renumber_read` reads a
  step's numbers and equations, `renumber_write` writes the new numbers back in its style);
- `verify`: each step checked against the new equation, the whole answer's integrity;
- `patch`: the verified prefix continued by the backend (patch prompt, patched steps);
- `fallback`: the deterministic exact-arithmetic finish;
- `mathtext`: the math reader every stage uses (equations, expressions and numbers in model text,
  LaTeX or plain), over `expr`: exact polynomials and linear forms of plain math;
- `task`: `LinearEquationTask`, which wires the stages together.
"""

from stepcache_core.tasks.linear.parse import detect_linear
from stepcache_core.tasks.linear.spec import LinearSpec
from stepcache_core.tasks.linear.task import LinearEquationTask

__all__ = ["LinearEquationTask", "LinearSpec", "detect_linear"]
