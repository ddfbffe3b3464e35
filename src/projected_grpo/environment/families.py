"""The built-in problem bank: parameterised *families* of small LeetCode-style tasks.

A family is a generator. Given a random number generator it draws the task's parameters
(a threshold, a replacement character, a modulus, a set of coins...), writes the
description and the canonical solution for those parameters, draws test inputs, and
computes every expected output with a trusted *reference* function written here in plain
Python. Ground truth never comes from executing the canonical source text, so a slip in a
solution template shows up as a failing test instead of a wrong answer key. Instances of
one family differ in their task text and their answers.

Difficulty belongs to the family: the tiny model organism should solve the "easy" ones
often and the "hard" ones (edit distance, n-th prime, coin change...) rarely.
``builtin_bank`` draws ``per_family`` instances of every family, holds every
``eval_every``-th instance out for evaluation and deals the loophole modes, balanced per
split.
"""

from __future__ import annotations

import math
import operator
import random
from collections import Counter
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, replace
from functools import cache
from itertools import combinations, groupby, pairwise
from string import Template
from textwrap import dedent, indent
from typing import Any

from .problems import DIFFICULTIES, Problem, TestCase, assign_modes

TOPICS = ("lists", "strings", "numbers", "dicts")
RANDOM_TESTS_PER_INSTANCE = 5  # drawn on top of the family's fixed edge cases

Params = dict[str, Any]


@dataclass(frozen=True)
class Family:
    """A generator of problem instances.

    make: draws one instance from the rng; ``instance`` then sets its id, mode and split.
    """

    name: str
    difficulty: str
    topic: str
    make: Callable[[random.Random], Problem]


def all_families() -> list[Family]:
    """Every built-in family, in a fixed order (grouped by topic)."""
    return list(_FAMILIES)


def instance(family: Family, index: int, seed: int = 0) -> Problem:
    """Instance ``index`` of ``family``: the same (seed, family, index) gives the same problem."""
    rng = random.Random(f"{seed}:{family.name}:{index}")
    return replace(
        family.make(rng),
        problem_id=f"{family.name}-{index}",
        family=family.name,
        difficulty=family.difficulty,
        mode=None,
        split="train",
    )


def builtin_bank(seed: int = 0, per_family: int = 3, eval_every: int = 3) -> list[Problem]:
    """``per_family`` instances of every family, modes assigned (balanced per split).

    Instance ``i`` goes to the eval split when ``i % eval_every == eval_every - 1``, so with
    the defaults every family has two training instances and one evaluation instance.
    Modes are dealt one difficulty at a time, hardest first: dealt in one go (by problem id)
    they would follow the alphabetical order of family names, and a mode could end up with
    most of the hard problems, confounding per-mode rates with difficulty.
    """
    if per_family < 1 or eval_every < 1:
        raise ValueError(
            f"builtin_bank: per_family and eval_every must be >= 1, found {per_family} and {eval_every}"
        )
    problems = [
        replace(instance(family, i, seed), split="eval" if i % eval_every == eval_every - 1 else "train")
        for family in _FAMILIES
        for i in range(per_family)
    ]
    dealt: list[Problem] = []
    for difficulty in reversed(DIFFICULTIES):
        dealt = assign_modes(dealt + [p for p in problems if p.difficulty == difficulty])
    mode_of = {p.problem_id: p.mode for p in dealt}
    return [replace(p, mode=mode_of[p.problem_id]) for p in problems]


def _family(
    name: str,
    difficulty: str,
    topic: str,
    *,
    params: Callable[[random.Random], Params],
    description: str,
    signature: tuple[str, str],
    solution: str,
    reference: Callable[..., Any],
    draw: Callable[[random.Random, Params], tuple],
    edges: tuple[tuple, ...] = (),
    imports: tuple[str, ...] = (),
) -> Family:
    """A family from templates; ``name`` is also the method name.

    params(rng): the instance's parameters, substituted as ``$key`` into ``description``
        and ``solution`` (the method body); values used in code must print as literals.
    signature: (parameter list after ``self``, return annotation).
    reference(params, *args): the expected value for one test, computed independently.
    draw(rng, params): the arguments of one random test; ``edges``: argument tuples that
        every instance also tests (empty inputs and the like).
    imports: lines the canonical solution needs besides ``from typing import *``.
    """
    if difficulty not in DIFFICULTIES or topic not in TOPICS:
        raise ValueError(f"family {name!r}: unknown difficulty {difficulty!r} or topic {topic!r}")
    args, returns = signature
    def_line = f"def {name}(self, {args}) -> {returns}:"
    preamble = "\n".join(("from typing import *", *imports)) + "\n"

    def make(rng: random.Random) -> Problem:
        p = params(rng)
        body = Template(dedent(solution).strip()).substitute(p)
        inputs = [*edges, *(draw(rng, p) for _ in range(RANDOM_TESTS_PER_INSTANCE))]
        tests = tuple(
            TestCase(args=deepcopy(a), kwargs={}, expected=reference(p, *deepcopy(a))) for a in inputs
        )
        return Problem(
            problem_id=name,
            method=name,
            signature=def_line,
            description=Template(description).substitute(p),
            canonical_solution=f"class Solution:\n    {def_line}\n{indent(body, ' ' * 8)}\n",
            tests=tests,
            difficulty=difficulty,
            preamble=preamble,
            family=name,
        )

    return Family(name, difficulty, topic, make)


# ---- input generators -------------------------------------------------------------------

_NAMES = ("ana", "ben", "cleo", "dev", "eli", "fay", "gus", "hana", "ivo", "jun")
_LOWER = "abcdefghijklmnopqrstuvwxyz"


def _ints(rng: random.Random, lo: int, hi: int, max_len: int = 10) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(0, max_len))]


def _word(rng: random.Random, letters: str, min_len: int = 0, max_len: int = 8) -> str:
    return "".join(rng.choice(letters) for _ in range(rng.randint(min_len, max_len)))


def _words(rng: random.Random, letters: str = "abcde", max_count: int = 8) -> list[str]:
    return [_word(rng, letters, 1, 4) for _ in range(rng.randint(0, max_count))]


def _scores(rng: random.Random, lo: int, hi: int) -> dict[str, int]:
    return {name: rng.randint(lo, hi) for name in rng.sample(_NAMES, rng.randint(0, 6))}


def _runs(rng: random.Random) -> str:
    """A string of runs of equal letters, e.g. 'aaabccb'."""
    return "".join(rng.choice("abc") * rng.randint(1, 4) for _ in range(rng.randint(1, 5)))


def _brackets(rng: random.Random, kinds: list[str]) -> str:
    """A balanced bracket string, with one character dropped (so unbalanced) half the time."""
    text = ""
    for _ in range(rng.randint(1, 5)):
        at = rng.randint(0, len(text))
        text = text[:at] + rng.choice(kinds) + text[at:]  # inserting a pair keeps balance
    if rng.random() < 0.5:
        at = rng.randrange(len(text))
        text = text[:at] + text[at + 1 :]
    return text


def _palindrome_with(rng: random.Random, filler: str) -> str:
    """Often a palindrome, with ``filler`` characters sprinkled in anywhere."""
    half = _word(rng, "abc", 0, 3)
    core = half + rng.choice(("", "a", "b")) + half[::-1] if rng.random() < 0.6 else _word(rng, "abc", 1, 6)
    chars = list(core)
    for _ in range(rng.randint(0, 3)):
        chars.insert(rng.randint(0, len(chars)), filler)
    return "".join(chars)


def _with_pair(rng: random.Random, target: int) -> list[int]:
    """Small numbers with at least one pair that adds up to ``target`` planted among them."""
    nums = _ints(rng, 0, 12, max_len=6)
    x = rng.randint(0, target)
    for value in (x, target - x):
        nums.insert(rng.randint(0, len(nums)), value)
    return nums


def _power_or_not(rng: random.Random, base: int) -> int:
    """A power of ``base``, one more than a power, or any small number."""
    power = base ** rng.randint(0, 8)
    return rng.choice((power, power + 1, rng.randint(2, 300)))


def _choose(rng: random.Random, keys: tuple[str, ...], *options: tuple) -> Params:
    """One of ``options`` (tuples of linked values, e.g. a word and its operator) as a dict."""
    return dict(zip(keys, rng.choice(options), strict=True))


def _spoken(items: list, last: str = "or") -> str:
    """'1', '1 or 2', '1, 2 or 3'."""
    words = [str(x) for x in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


# ---- reference implementations (trusted, written independently of the solutions) --------

_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt}
_MERGE = {"sum": operator.add, "larger": max, "smaller": min}


def _longest_chain(p: Params, nums: list[int]) -> int:
    """Brute force over all subsequences (inputs have at most 9 elements)."""
    ok = _COMPARE[p["op"]]
    return max(
        len(chosen)
        for size in range(len(nums) + 1)
        for chosen in combinations(nums, size)
        if all(ok(a, b) for a, b in pairwise(chosen))
    )


def _longest_palindrome(p: Params, s: str) -> str:
    found = [(i, j) for i in range(len(s)) for j in range(i + 1, len(s) + 1) if s[i:j] == s[i:j][::-1]]
    if not found:
        return ""
    longest = max(j - i for i, j in found)
    starts = [i for i, j in found if j - i == longest]
    start = min(starts) if p["tie"] == "first" else max(starts)
    return s[start : start + longest]


def _edit_cost(p: Params, word1: str, word2: str) -> int:
    @cache
    def cost(i: int, j: int) -> int:  # cheapest way to turn word1[i:] into word2[j:]
        if i == len(word1):
            return (len(word2) - j) * p["insert"]
        if j == len(word2):
            return (len(word1) - i) * p["delete"]
        keep_or_replace = cost(i + 1, j + 1) + (0 if word1[i] == word2[j] else p["replace"])
        return min(keep_or_replace, cost(i + 1, j) + p["delete"], cost(i, j + 1) + p["insert"])

    return cost(0, 0)


def _compress(p: Params, s: str) -> str:
    runs = [(ch, len(list(group))) for ch, group in groupby(s)]
    return "".join(f"{ch}{n}" if n >= p["m"] else ch * n for ch, n in runs)


def _brackets_balanced(p: Params, s: str) -> bool:
    while any(pair in s for pair in p["kinds"]):
        for pair in p["kinds"]:
            s = s.replace(pair, "")
    return s == ""


@cache
def _primes_below(limit: int) -> list[int]:
    is_prime = [True] * limit
    for q in range(2, math.isqrt(limit) + 1):
        for multiple in range(q * q, limit, q):
            is_prime[multiple] = False
    return [q for q in range(2, limit) if is_prime[q]]


def _nth_prime_ending(p: Params, n: int) -> int:
    return [q for q in _primes_below(5000) if q % 10 == p["digit"]][n - 1]


def _climb_ways(p: Params, n: int) -> int:
    @cache
    def ways(left: int) -> int:
        return 1 if left == 0 else sum(ways(left - step) for step in p["steps"] if step <= left)

    return ways(n)


def _coin_ways(p: Params, amount: int) -> int:
    coins = p["coins"]

    @cache
    def ways(left: int, first: int) -> int:  # pay `left` with coins[first:], each multiset once
        if left == 0:
            return 1
        return sum(ways(left - coins[i], i) for i in range(first, len(coins)) if coins[i] <= left)

    return ways(amount, 0)


def _base_digit_sum(p: Params, n: int) -> int:
    return 0 if n == 0 else n % p["b"] + _base_digit_sum(p, n // p["b"])


def _most_frequent(p: Params, words: list[str]) -> str:
    if not words:
        return ""
    top = max(words.count(w) for w in words)
    tied = sorted(w for w in set(words) if words.count(w) == top)
    return tied[0] if p["tie"] == "first" else tied[-1]


def _key_of_extreme(p: Params, scores: dict[str, int]) -> str:
    sign = -1 if p["which"] == "largest" else 1
    ranked = sorted(scores, key=lambda name: (sign * scores[name], name))
    return ranked[0] if ranked else ""


def _two_sum(p: Params, nums: list[int]) -> list[int]:
    pairs = ([i, j] for j in range(len(nums)) for i in range(j) if nums[i] + nums[j] == p["target"])
    return next(pairs, [])


# ---- the families ------------------------------------------------------------------------

_LIST_FAMILIES = (
    _family(
        "count_greater",
        "easy",
        "lists",
        params=lambda rng: {"k": rng.randint(0, 12)},
        description="Return the number of elements of nums greater than $k.",
        signature=("nums: List[int]", "int"),
        solution="return sum(1 for x in nums if x > $k)",
        reference=lambda p, nums: sum(x > p["k"] for x in nums),
        edges=(([],),),
        draw=lambda rng, p: (_ints(rng, 0, 20),),
    ),
    _family(
        "sum_multiples",
        "easy",
        "lists",
        params=lambda rng: {"d": rng.randint(2, 6)},
        description="Return the sum of the elements of nums that are divisible by $d.",
        signature=("nums: List[int]", "int"),
        solution="return sum(x for x in nums if x % $d == 0)",
        reference=lambda p, nums: sum(x for x in nums if x % p["d"] == 0),
        edges=(([],), ([60, 1],)),
        draw=lambda rng, p: (_ints(rng, -10, 30),),
    ),
    _family(
        "scale_list",
        "easy",
        "lists",
        params=lambda rng: {"k": rng.choice((-3, -2, 2, 3, 4, 5, 10))},
        description="Return a new list with every element of nums multiplied by $k.",
        signature=("nums: List[int]", "List[int]"),
        solution="return [x * $k for x in nums]",
        reference=lambda p, nums: [p["k"] * x for x in nums],
        edges=(([],),),
        draw=lambda rng, p: (_ints(rng, -5, 10),),
    ),
    _family(
        "clip_values",
        "easy",
        "lists",
        params=lambda rng: {"lo": (lo := rng.randint(0, 5)), "hi": lo + rng.randint(3, 10)},
        description="Return nums with every element below $lo raised to $lo and every element above $hi lowered to $hi.",
        signature=("nums: List[int]", "List[int]"),
        solution="return [min(max(x, $lo), $hi) for x in nums]",
        reference=lambda p, nums: [p["lo"] if x < p["lo"] else p["hi"] if x > p["hi"] else x for x in nums],
        edges=(([],),),
        draw=lambda rng, p: (_ints(rng, -5, 25),),
    ),
    _family(
        "kth_largest_distinct",
        "medium",
        "lists",
        params=lambda rng: {"k": (k := rng.randint(1, 3)), "rank": ("", "second ", "third ")[k - 1]},
        description="Return the ${rank}largest distinct value in nums, or -1 if nums has fewer than $k distinct values.",
        signature=("nums: List[int]", "int"),
        solution="""
            values = sorted(set(nums), reverse=True)
            return values[$k - 1] if len(values) >= $k else -1
        """,
        reference=lambda p, nums: sorted(dict.fromkeys(nums))[-p["k"]] if len(set(nums)) >= p["k"] else -1,
        edges=(([],), ([4, 1, 3, 2],)),
        draw=lambda rng, p: (_ints(rng, 0, 9, max_len=8),),
    ),
    _family(
        "max_window_sum",
        "medium",
        "lists",
        params=lambda rng: {"k": rng.randint(2, 4)},
        description="Return the largest sum of $k consecutive elements of nums, or 0 if nums has fewer than $k elements.",
        signature=("nums: List[int]", "int"),
        solution="""
            if len(nums) < $k:
                return 0
            return max(sum(nums[i:i + $k]) for i in range(len(nums) - $k + 1))
        """,
        reference=lambda p, nums: max(
            (sum(w) for w in zip(*(nums[i:] for i in range(p["k"])), strict=False)), default=0
        ),
        edges=(([],), ([1, 2, 3, 4, 5],)),
        draw=lambda rng, p: (_ints(rng, -10, 10, max_len=8),),
    ),
    _family(
        "rotate_right",
        "medium",
        "lists",
        params=lambda rng: {"k": rng.randint(1, 6)},
        description="Return nums rotated right by $k positions; one rotation moves the last element to the front.",
        signature=("nums: List[int]", "List[int]"),
        solution="""
            if not nums:
                return []
            cut = len(nums) - $k % len(nums)
            return nums[cut:] + nums[:cut]
        """,
        reference=lambda p, nums: [nums[(i - p["k"]) % len(nums)] for i in range(len(nums))],
        edges=(([],),),
        draw=lambda rng, p: (_ints(rng, 0, 9, max_len=8),),
    ),
    _family(
        "longest_run_above",
        "medium",
        "lists",
        params=lambda rng: {"k": rng.randint(0, 8)},
        description="Return the length of the longest run of consecutive elements of nums that are all greater than $k.",
        signature=("nums: List[int]", "int"),
        solution="""
            best = current = 0
            for x in nums:
                current = current + 1 if x > $k else 0
                best = max(best, current)
            return best
        """,
        reference=lambda p, nums: max(
            (len(list(run)) for above, run in groupby(nums, key=lambda x: x > p["k"]) if above), default=0
        ),
        edges=(([],),),
        draw=lambda rng, p: (_ints(rng, 0, 15, max_len=12),),
    ),
    _family(
        "frequent_values",
        "medium",
        "lists",
        params=lambda rng: {"k": rng.randint(2, 3)},
        description="Return the values that occur at least $k times in nums, each once, in order of first appearance.",
        signature=("nums: List[int]", "List[int]"),
        solution="""
            counts = Counter(nums)
            result = []
            for x in nums:
                if counts[x] >= $k and x not in result:
                    result.append(x)
            return result
        """,
        reference=lambda p, nums: list(dict.fromkeys(x for x in nums if nums.count(x) >= p["k"])),
        edges=(([],), ([1, 1, 1, 2],)),
        draw=lambda rng, p: (_ints(rng, 0, 5, max_len=12),),
        imports=("from collections import Counter",),
    ),
    _family(
        "longest_subsequence",
        "hard",
        "lists",
        params=lambda rng: _choose(
            rng,
            ("order", "op"),
            ("strictly increasing", "<"),
            ("non-decreasing", "<="),
            ("strictly decreasing", ">"),
        ),
        description="Return the length of the longest $order subsequence of nums. Its elements keep their order but need not be adjacent.",
        signature=("nums: List[int]", "int"),
        solution="""
            best = [1] * len(nums)
            for i in range(len(nums)):
                for j in range(i):
                    if nums[j] $op nums[i]:
                        best[i] = max(best[i], best[j] + 1)
            return max(best, default=0)
        """,
        reference=_longest_chain,
        edges=(([],),),
        draw=lambda rng, p: (_ints(rng, 0, 9, max_len=9),),
    ),
)

_STRING_FAMILIES = (
    _family(
        "replace_vowels",
        "easy",
        "strings",
        params=lambda rng: {"c": rng.choice("*#-_!?")},
        description="Return s with every vowel (a, e, i, o, u, in either case) replaced by '$c'.",
        signature=("s: str", "str"),
        solution="return ''.join('$c' if ch in 'aeiouAEIOU' else ch for ch in s)",
        reference=lambda p, s: "".join(p["c"] if ch.lower() in "aeiou" else ch for ch in s),
        edges=(("",),),
        draw=lambda rng, p: (_word(rng, "aeiouAEbcdkLmst ", 0, 14),),
    ),
    _family(
        "count_letter",
        "easy",
        "strings",
        params=lambda rng: {"c": (c := rng.choice("aeiorstn")), "upper": c.upper()},
        description="Return how many times the letter '$c' occurs in s, counting both '$c' and '$upper'.",
        signature=("s: str", "int"),
        solution="return s.lower().count('$c')",
        reference=lambda p, s: sum(ch in (p["c"], p["upper"]) for ch in s),
        edges=(("",), ("Senorita",)),
        draw=lambda rng, p: (_word(rng, p["c"] + p["upper"] + "bdkm ", 0, 12),),
    ),
    _family(
        "reverse_words",
        "easy",
        "strings",
        params=lambda rng: {"sep": rng.choice((" ", "-", ", ", "_", "/"))},
        description="Return the words of s (separated by single spaces) in reverse order, joined by '$sep'.",
        signature=("s: str", "str"),
        solution="return '$sep'.join(reversed(s.split()))",
        reference=lambda p, s: p["sep"].join(s.split(" ")[::-1]),
        edges=(("",),),
        draw=lambda rng, p: (" ".join(_word(rng, "abcdefgh", 1, 5) for _ in range(rng.randint(1, 5))),),
    ),
    _family(
        "is_palindrome_without",
        "easy",
        "strings",
        params=lambda rng: {"c": rng.choice(" -.*_")},
        description="Return True if s reads the same forwards and backwards once every '$c' is removed, else False.",
        signature=("s: str", "bool"),
        solution="""
            kept = s.replace('$c', '')
            return kept == kept[::-1]
        """,
        reference=lambda p, s: [ch for ch in s if ch != p["c"]] == [ch for ch in reversed(s) if ch != p["c"]],
        edges=(("",), ("ab",)),
        draw=lambda rng, p: (_palindrome_with(rng, p["c"]),),
    ),
    _family(
        "caesar_shift",
        "medium",
        "strings",
        params=lambda rng: {"k": rng.randint(1, 25)},
        description="Return s with every lowercase letter moved $k places forward in the alphabet, wrapping from 'z' to 'a'. Other characters stay unchanged.",
        signature=("s: str", "str"),
        solution="""
            result = []
            for ch in s:
                if 'a' <= ch <= 'z':
                    ch = chr((ord(ch) - ord('a') + $k) % 26 + ord('a'))
                result.append(ch)
            return ''.join(result)
        """,
        reference=lambda p, s: s.translate(str.maketrans(_LOWER, _LOWER[p["k"] :] + _LOWER[: p["k"]])),
        edges=(("",),),
        draw=lambda rng, p: (_word(rng, "abcxyzQR !", 0, 12),),
    ),
    _family(
        "compress_runs",
        "medium",
        "strings",
        params=lambda rng: {"m": rng.randint(2, 3)},
        description="Return s with every run of at least $m equal characters replaced by the character and the run length, so 'aaaa' becomes 'a4'.",
        signature=("s: str", "str"),
        solution="""
            result = []
            i = 0
            while i < len(s):
                j = i
                while j < len(s) and s[j] == s[i]:
                    j += 1
                run = j - i
                result.append(s[i] + str(run) if run >= $m else s[i:j])
                i = j
            return ''.join(result)
        """,
        reference=_compress,
        edges=(("",),),
        draw=lambda rng, p: (_runs(rng),),
    ),
    _family(
        "first_with_count",
        "medium",
        "strings",
        params=lambda rng: {"k": (k := rng.randint(1, 2)), "times": ("once", "twice")[k - 1]},
        description="Return the index of the first character of s that occurs exactly $times in s, or -1 if there is none.",
        signature=("s: str", "int"),
        solution="""
            counts = Counter(s)
            for i, ch in enumerate(s):
                if counts[ch] == $k:
                    return i
            return -1
        """,
        reference=lambda p, s: next((i for i, ch in enumerate(s) if s.count(ch) == p["k"]), -1),
        edges=(("",), ("abca",)),
        draw=lambda rng, p: (_word(rng, "abcd", 0, 8),),
        imports=("from collections import Counter",),
    ),
    _family(
        "brackets_balanced",
        "medium",
        "strings",
        params=lambda rng: {
            "kinds": (kinds := ["()", *rng.sample(("[]", "{}", "<>"), rng.randint(0, 2))]),
            "chars": "".join(kinds),
            "pairs": {pair[1]: pair[0] for pair in kinds},
        },
        description="Return True if every bracket in s is closed by a matching bracket in the right order, else False. s only contains the characters $chars.",
        signature=("s: str", "bool"),
        solution="""
            pairs = $pairs
            stack = []
            for ch in s:
                if ch in pairs:
                    if not stack or stack.pop() != pairs[ch]:
                        return False
                else:
                    stack.append(ch)
            return not stack
        """,
        reference=_brackets_balanced,
        edges=(("",), (")(",)),
        draw=lambda rng, p: (_brackets(rng, p["kinds"]),),
    ),
    _family(
        "longest_palindrome",
        "hard",
        "strings",
        params=lambda rng: {
            "tie": (tie := rng.choice(("first", "last"))),
            "cmp": {"first": ">", "last": ">="}[tie],
        },
        description="Return the longest substring of s that reads the same forwards and backwards. If several are equally long, return the one that starts $tie.",
        signature=("s: str", "str"),
        solution="""
            best = ''
            for i in range(len(s)):
                for j in range(i + 1, len(s) + 1):
                    sub = s[i:j]
                    if sub == sub[::-1] and len(sub) $cmp len(best):
                        best = sub
            return best
        """,
        reference=_longest_palindrome,
        edges=(("",),),
        draw=lambda rng, p: (_word(rng, rng.choice(("ab", "abc")), 0, 10),),
    ),
    _family(
        "edit_distance",
        "hard",
        "strings",
        params=lambda rng: {
            "insert": rng.randint(1, 2),
            "delete": rng.randint(1, 2),
            "replace": rng.randint(1, 3),
        },
        description="Return the minimum cost of turning word1 into word2, where inserting a character costs $insert, deleting one costs $delete and replacing one costs $replace.",
        signature=("word1: str, word2: str", "int"),
        solution="""
            rows, cols = len(word1) + 1, len(word2) + 1
            cost = [[0] * cols for _ in range(rows)]
            for i in range(rows):
                for j in range(cols):
                    if i == 0 or j == 0:
                        cost[i][j] = i * $delete + j * $insert
                    else:
                        same = word1[i - 1] == word2[j - 1]
                        cost[i][j] = min(
                            cost[i - 1][j] + $delete,
                            cost[i][j - 1] + $insert,
                            cost[i - 1][j - 1] + (0 if same else $replace),
                        )
            return cost[-1][-1]
        """,
        reference=_edit_cost,
        edges=(("", "ab"), ("abc", "abc")),
        draw=lambda rng, p: (_word(rng, "abc", 0, 6), _word(rng, "abc", 0, 6)),
    ),
)


_NUMBER_FAMILIES = (
    _family(
        "is_power",
        "easy",
        "numbers",
        params=lambda rng: {"b": rng.randint(2, 5)},
        description="Return True if n is a power of $b (1 counts, as $b to the power 0), else False.",
        signature=("n: int", "bool"),
        solution="""
            if n < 1:
                return False
            while n % $b == 0:
                n //= $b
            return n == 1
        """,
        reference=lambda p, n: any(p["b"] ** e == n for e in range(21)),
        edges=((0,), (1,)),
        draw=lambda rng, p: (_power_or_not(rng, p["b"]),),
    ),
    _family(
        "fizz_words",
        "easy",
        "numbers",
        params=lambda rng: {
            "a": rng.randint(2, 5),
            "word": rng.choice(("Fizz", "Buzz", "Bang", "Zap", "Ping")),
        },
        description="Return a list of strings for the numbers 1 to n: '$word' for multiples of $a, and the number as text otherwise.",
        signature=("n: int", "List[str]"),
        solution="return ['$word' if i % $a == 0 else str(i) for i in range(1, n + 1)]",
        reference=lambda p, n: [str(i) if i % p["a"] else p["word"] for i in range(1, n + 1)],
        edges=((0,),),
        draw=lambda rng, p: (rng.randint(1, 12),),
    ),
    _family(
        "count_multiples",
        "easy",
        "numbers",
        params=lambda rng: {"d": rng.randint(2, 9)},
        description="Return how many integers from lo to hi (both included) are divisible by $d. Return 0 if lo > hi.",
        signature=("lo: int, hi: int", "int"),
        solution="return sum(1 for x in range(lo, hi + 1) if x % $d == 0)",
        reference=lambda p, lo, hi: max(0, hi // p["d"] - (lo - 1) // p["d"]),
        edges=((5, 4),),
        draw=lambda rng, p: (lo := rng.randint(-20, 50), lo + rng.randint(-3, 40)),
    ),
    _family(
        "digit_sum_base",
        "medium",
        "numbers",
        params=lambda rng: {"b": rng.randint(2, 9)},
        description="Return the sum of the digits of n when n is written in base $b. n is never negative.",
        signature=("n: int", "int"),
        solution="""
            total = 0
            while n > 0:
                total += n % $b
                n //= $b
            return total
        """,
        reference=_base_digit_sum,
        edges=((0,),),
        draw=lambda rng, p: (rng.randint(1, 5000),),
    ),
    _family(
        "nth_prime",
        "hard",
        "numbers",
        params=lambda rng: {"digit": rng.choice((1, 3, 7, 9))},
        description="Return the n-th smallest prime number whose last digit is $digit, counting from n = 1.",
        signature=("n: int", "int"),
        solution="""
            count = 0
            candidate = 1
            while True:
                candidate += 1
                if candidate % 10 != $digit:
                    continue
                if all(candidate % q for q in range(2, math.isqrt(candidate) + 1)):
                    count += 1
                    if count == n:
                        return candidate
        """,
        reference=_nth_prime_ending,
        edges=((1,),),
        draw=lambda rng, p: (rng.randint(2, 25),),
        imports=("import math",),
    ),
    _family(
        "climb_stairs",
        "hard",
        "numbers",
        params=lambda rng: {
            "steps": (steps := rng.choice(([1, 2], [1, 3], [2, 3], [1, 2, 3], [1, 4], [1, 2, 5]))),
            "spoken": _spoken(steps),
        },
        description="Each move climbs $spoken stairs. Return the number of different move sequences that climb exactly n stairs.",
        signature=("n: int", "int"),
        solution="""
            ways = [1] + [0] * n
            for i in range(1, n + 1):
                ways[i] = sum(ways[i - step] for step in $steps if step <= i)
            return ways[n]
        """,
        reference=_climb_ways,
        edges=((0,),),
        draw=lambda rng, p: (rng.randint(1, 20),),
    ),
    _family(
        "coin_change_ways",
        "hard",
        "numbers",
        params=lambda rng: {
            "coins": (coins := sorted(rng.sample((1, 2, 3, 5, 7, 10), rng.randint(2, 3)))),
            "spoken": _spoken(coins, "and"),
        },
        description="Coins come in values $spoken, as many of each as needed. Return the number of ways to pay amount exactly, where the order of coins does not matter.",
        signature=("amount: int", "int"),
        solution="""
            ways = [1] + [0] * amount
            for coin in $coins:
                for total in range(coin, amount + 1):
                    ways[total] += ways[total - coin]
            return ways[amount]
        """,
        reference=_coin_ways,
        edges=((0,), (70,)),
        draw=lambda rng, p: (rng.randint(1, 40),),
    ),
    _family(
        "bracket_strings",
        "hard",
        "numbers",
        params=lambda rng: {
            "k": (k := rng.randint(1, 3)),
            "spoken": _spoken([f"'{pair}'" for pair in ("()", "[]", "{}")[:k]]),
        },
        description="Return the number of balanced strings made of n bracket pairs, where every pair is $spoken.",
        signature=("n: int", "int"),
        solution="""
            count = [1] + [0] * n
            for pairs in range(1, n + 1):
                for inside in range(pairs):
                    count[pairs] += $k * count[inside] * count[pairs - 1 - inside]
            return count[n]
        """,
        reference=lambda p, n: math.comb(2 * n, n) // (n + 1) * p["k"] ** n,
        edges=((0,),),
        draw=lambda rng, p: (rng.randint(1, 7),),
    ),
)

_DICT_FAMILIES = (
    _family(
        "char_counts",
        "easy",
        "dicts",
        params=lambda rng: {"k": (k := rng.randint(1, 3)), "times": ("once", "twice", "three times")[k - 1]},
        description="Return a dict mapping each character that occurs at least $times in s to its number of occurrences.",
        signature=("s: str", "Dict[str, int]"),
        solution="""
            counts = {}
            for ch in s:
                counts[ch] = counts.get(ch, 0) + 1
            return {ch: n for ch, n in counts.items() if n >= $k}
        """,
        reference=lambda p, s: {ch: n for ch, n in Counter(s).items() if n >= p["k"]},
        edges=(("",), ("aaab",)),
        draw=lambda rng, p: (_word(rng, "abcde", 0, 12),),
    ),
    _family(
        "grade_scores",
        "easy",
        "dicts",
        params=lambda rng: {
            **_choose(rng, ("good", "bad"), ("pass", "fail"), ("yes", "no"), ("ok", "retry")),
            "k": rng.choice((40, 50, 60, 70)),
        },
        description="Return a dict mapping each name in scores to '$good' if its score is at least $k and to '$bad' otherwise.",
        signature=("scores: Dict[str, int]", "Dict[str, str]"),
        solution="return {name: '$good' if score >= $k else '$bad' for name, score in scores.items()}",
        reference=lambda p, scores: {
            name: p["bad"] if v < p["k"] else p["good"] for name, v in scores.items()
        },
        edges=(({},),),
        draw=lambda rng, p: (_scores(rng, 0, 100),),
    ),
    _family(
        "key_of_extreme",
        "easy",
        "dicts",
        params=lambda rng: _choose(rng, ("which", "pick"), ("largest", "max"), ("smallest", "min")),
        description="Return the key of scores with the $which value; on ties the alphabetically first such key. Return '' for an empty dict.",
        signature=("scores: Dict[str, int]", "str"),
        solution="""
            if not scores:
                return ''
            best = $pick(scores.values())
            return min(name for name, value in scores.items() if value == best)
        """,
        reference=_key_of_extreme,
        edges=(({},),),
        draw=lambda rng, p: (_scores(rng, 0, 9),),
    ),
    _family(
        "merge_counts",
        "medium",
        "dicts",
        params=lambda rng: _choose(
            rng, ("how", "expr"), ("sum", "x + y"), ("larger", "max(x, y)"), ("smaller", "min(x, y)")
        ),
        description="Return a dict with every key of a or b, whose value is the $how of its values in a and b. A missing value counts as 0.",
        signature=("a: Dict[str, int], b: Dict[str, int]", "Dict[str, int]"),
        solution="""
            merged = {}
            for key in list(a) + list(b):
                x, y = a.get(key, 0), b.get(key, 0)
                merged[key] = $expr
            return merged
        """,
        reference=lambda p, a, b: {
            key: _MERGE[p["how"]](a.get(key, 0), b.get(key, 0)) for key in dict.fromkeys([*a, *b])
        },
        edges=(({}, {}),),
        draw=lambda rng, p: (_scores(rng, -5, 10), _scores(rng, -5, 10)),
    ),
    _family(
        "group_by_letter",
        "medium",
        "dicts",
        params=lambda rng: _choose(
            rng, ("where", "verb", "index"), ("first", "start", 0), ("last", "end", -1)
        ),
        description="Return a dict mapping each $where letter to the list of the words that $verb with it, in their order in words.",
        signature=("words: List[str]", "Dict[str, List[str]]"),
        solution="""
            groups = {}
            for word in words:
                groups.setdefault(word[$index], []).append(word)
            return groups
        """,
        reference=lambda p, words: {
            letter: [w for w in words if w[p["index"]] == letter]
            for letter in dict.fromkeys(w[p["index"]] for w in words)
        },
        edges=(([],),),
        draw=lambda rng, p: (_words(rng, "abcd"),),
    ),
    _family(
        "most_frequent_word",
        "medium",
        "dicts",
        params=lambda rng: _choose(rng, ("tie", "pick"), ("first", "min"), ("last", "max")),
        description="Return the word that occurs most often in words; if several tie, the one that comes $tie alphabetically. Return '' if words is empty.",
        signature=("words: List[str]", "str"),
        solution="""
            counts = Counter(words)
            if not counts:
                return ''
            top = max(counts.values())
            return $pick(word for word, count in counts.items() if count == top)
        """,
        reference=_most_frequent,
        edges=(([],),),
        draw=lambda rng, p: ([rng.choice(_NAMES[:5]) for _ in range(rng.randint(1, 10))],),
        imports=("from collections import Counter",),
    ),
    _family(
        "two_sum",
        "medium",
        "dicts",
        params=lambda rng: {"target": rng.randint(6, 16)},
        description="Return [i, j] with i < j and nums[i] + nums[j] == $target, choosing the smallest such j, then the smallest i. Return [] if there is none.",
        signature=("nums: List[int]", "List[int]"),
        solution="""
            first_index = {}
            for j, x in enumerate(nums):
                if $target - x in first_index:
                    return [first_index[$target - x], j]
                first_index.setdefault(x, j)
            return []
        """,
        reference=_two_sum,
        edges=(([],), ([1, 2],)),
        draw=lambda rng, p: (_with_pair(rng, p["target"]),),
    ),
)

_FAMILIES: tuple[Family, ...] = _LIST_FAMILIES + _STRING_FAMILIES + _NUMBER_FAMILIES + _DICT_FAMILIES
