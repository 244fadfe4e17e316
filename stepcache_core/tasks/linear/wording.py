"""The linear family's closed-world wording: the prompt spans a spec accounts for, and the
reviewed lexicon of instruction phrasings two requests for the same equation may differ in."""

from __future__ import annotations

import re

from stepcache_core.tasks.linear.spec import LinearSpec
from stepcache_core.tasks.understanding import SHARED_LEXICON, Lexicon, Mask

__all__ = ["LINEAR_LEXICON", "linear_masks"]


def linear_masks(prompt: str, spec: LinearSpec) -> list[Mask]:
    """The equation as written (``<eq>``) and every standalone mention of its variable
    (``<v>``): what the spec accounts for. Numbers and words around them stay in the residue."""
    masks = [Mask(m.start(), m.end(), "eq") for m in re.finditer(re.escape(spec.equation), prompt)]
    # The letter alone, quoted or not ("end with 'x = <value>'"), never inside a word or a
    # LaTeX command.
    letter = re.compile(r"(?<![A-Za-z\\])" + re.escape(spec.variable) + r"(?![A-Za-z])")
    masks += [Mask(m.start(), m.end(), "v") for m in letter.finditer(prompt)]
    return masks


#: Ways of asking to solve for the variable, of asking for the working, and of asking for the
#: final ``v = value`` line — the benchmark's own phrasings among them. Nothing here is a
#: constraint, a format, a language or another question: any of those stays in the residue.
LINEAR_LEXICON = SHARED_LEXICON | Lexicon.of(
    # the equation and its variable (their content is compared through the spec)
    "<eq>",
    "<v>",
    "the equation",
    "equation",
    "the linear equation",
    "linear equation",
    # asking to solve
    "solve",
    "solve for <v>",
    "for <v>",
    "find <v>",
    "find the value of <v>",
    "find the value of <v> if",
    "find the value of <v> in",
    "find <v> such that",
    "such that",
    "determine <v>",
    "determine the value of <v>",
    "work out <v>",
    "work out <v> from the equation",
    "work out the value of <v>",
    "what is <v>",
    "what is <v> in",
    "what is <v> if",
    "what is the value of <v>",
    "what is the value of <v> in",
    "what's <v>",
    "what's the value of <v>",
    "what value of <v> satisfies",
    "what value of <v> solves",
    "calculate <v>",
    "compute <v>",
    "i need <v>",
    "quick algebra question",
    "algebra question",
    "given",
    "if",
    "in",
    "from",
    "the",
    "a",
    "an",
    "and",
    "then",
    # asking for the working
    "show your steps",
    "show the steps",
    "show steps",
    "show all steps",
    "show all the steps",
    "show your work",
    "show your working",
    "show the working",
    "show all your work",
    "show the key steps",
    "show short steps",
    "show the key steps, one per line",
    "step by step",
    "step-by-step",
    "go step by step",
    "work step by step",
    "think step by step",
    "solve it step by step",
    "one step per line",
    "one per line",
    "number the steps",
    "number each step",
    "explain step by step",
    "number your steps",
    "brief steps",
    "short steps",
    "a few short steps",
    "short working",
    "keep it short",
    "be concise",
    "be brief",
    "briefly",
    "concisely",
    # asking for the final line (read into the spec as well: `final_line` is an answer format,
    # so only requests that both ask for it share answers)
    "end with <v> = <value>",
    "and end with <v> = <value>",
    "finish with <v> = <value>",
    "finish with the value of <v>",
    "make the last line <v> = <value>",
    "final line <v> = <value>",
    "ending in <v> = <value>",
    "end with the line <v> = <value>",
    "<v> = <value> on its own line",
)
