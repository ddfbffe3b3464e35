"""Batched sampling from any Hugging Face causal LM, used by the trainer and by evaluation.

One call samples one completion per prompt: the prompts are tokenised once and left padded,
the model reads them in one prefill forward, then decodes one token per step for all rows
together with its KV cache (``past_key_values``). The prefill reads each distinct prompt
once and copies its cache and last logits to every row that repeats it (a GRPO group, an
evaluation's samples of one problem), where the cache holds only plain key/value layers:
the same numbers as a prefill per row, for under a third of its CPU on the organism's
groups of 4 or 8 rows (``bench/compile.txt``). Each step draws from the temperature /
top-p (nucleus) distribution with the caller's generator (``next_tokens``), so a fixed seed
gives identical samples; ``temperature == 0`` is greedy (argmax).

**Stop rule.** A row is *finished* when either

* it emits an end-of-sequence token (the tokenizer's ``eos_token_id`` or any id in the
  model's ``generation_config.eos_token_id``), or
* its decoded completion text, ``text``, contains a stop string that starts *after the end
  of the opening code fence*. The opening fence is the first ``````` `` in ``text`` and it
  ends three characters later; the rule searches ``text[fence_end:]``, so with the default
  stop string ``"\\n```"`` the completion ``"```python\\nx = 1\\n```"`` stops at its closing
  fence, while ``"```python\\n"`` (or ``"\\n```python\\n"``, whose leading newline and
  backticks spell the stop string but are the opening fence itself) does not stop. A text
  with no opening fence never stops on a stop string, only on eos or ``max_new_tokens``.

The token that completes the stop string (or the eos token) is the row's last real token: it
is kept in ``completion_ids`` and marked 1 in ``completion_mask``. From then on the row
emits ``pad`` (masked 0) and takes no further part: it is dropped from the batch, the KV
cache, the mask and the positions (plain key/value caches only), and every step still draws
one uniform per row of the whole batch, so a row's samples do not depend on when the others
finish. Sampling ends when every row is finished or after ``max_new_tokens`` steps. ``texts`` are decoded without special tokens and cut right
after the stop string, since the stop token may carry characters past it (``"```\\n"``).

Stop detection decodes incrementally: each step decodes, per unfinished row, only the few
tokens since the last emitted character (the prefix/read-offset scheme streaming
detokenisers use, so multi-byte characters and leading spaces come out right), appends the
new characters to the row's text and searches that text. Nothing is re-tokenised.
"""

from __future__ import annotations

import inspect
import weakref
from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

FENCE = "```"


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample one completion per prompt."""

    max_new_tokens: int = 128
    """Most tokens generated per completion (eos / stop token included)."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy (argmax, no randomness)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of most likely tokens whose probability mass
    reaches ``top_p`` (1.0 keeps all)."""
    stop_strings: tuple[str, ...] = ("\n```",)
    """A row stops when one of these appears after the opening code fence (module docstring);
    ``()`` disables the text stop (eos and ``max_new_tokens`` still apply)."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingConfig.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"SamplingConfig.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingConfig.top_p must be in (0, 1], got {self.top_p}")
        if any(not s for s in self.stop_strings):
            raise ValueError(f"SamplingConfig.stop_strings must not contain '', got {self.stop_strings!r}")


@dataclass
class SampleBatch:
    """One completion per prompt, as token ids ready for a teacher-forced log-prob pass.

    ``B`` prompts, ``P`` the longest prompt in tokens, ``T`` the number of decoding steps run
    (``T <= max_new_tokens``; fewer when every row finished early). The model's input for
    row ``b`` is ``prompt_ids[b][prompt_mask[b] == 1]`` followed by
    ``completion_ids[b][completion_mask[b] == 1]``: exactly the tokens that were sampled.
    """

    prompt_ids: torch.Tensor
    """``[B, P]`` long, left padded with the pad id."""
    prompt_mask: torch.Tensor
    """``[B, P]`` long, 1 on prompt tokens, 0 on the left padding."""
    completion_ids: torch.Tensor
    """``[B, T]`` long, the sampled tokens, right padded with the pad id."""
    completion_mask: torch.Tensor
    """``[B, T]`` long, 1 on generated tokens up to and including the final eos / stop token,
    0 after. Each row is a run of ones followed by zeros."""
    texts: list[str]
    """``B`` decoded completions without special tokens, cut right after the stop string
    when one fired."""
    finished: list[bool]
    """``B`` flags: True when the row stopped on eos or a stop string, False when it ran
    out of ``max_new_tokens``."""


def stop_end(text: str, stop_strings: tuple[str, ...]) -> int | None:
    """Index just past the first stop string that starts after the opening code fence in
    ``text``, or None when the rule has not fired (module docstring)."""
    fence_start = text.find(FENCE)
    if fence_start < 0:
        return None
    fence_end = fence_start + len(FENCE)
    ends = [i + len(s) for s in stop_strings if (i := text.find(s, fence_end)) >= 0]
    return min(ends) if ends else None


def _eos_ids(model, tokenizer) -> list[int]:
    ids = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    generation_config = getattr(model, "generation_config", None)
    model_eos = getattr(generation_config, "eos_token_id", None)
    if isinstance(model_eos, int):
        ids.add(model_eos)
    elif model_eos is not None:
        ids.update(int(i) for i in model_eos)
    return sorted(ids)


def pad_token_id(tokenizer) -> int | None:
    """The id used to pad: the tokenizer's pad token, else its eos token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _left_pad(token_lists: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in token_lists)
    ids = torch.full((len(token_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_lists), width), dtype=torch.long)
    for row, tokens in enumerate(token_lists):
        if tokens:
            ids[row, width - len(tokens) :] = torch.tensor(tokens, dtype=torch.long)
            mask[row, width - len(tokens) :] = 1
    return ids, mask


def next_tokens(
    logits: torch.Tensor,
    config: SamplingConfig,
    generator: torch.Generator,
    rows: torch.Tensor | None = None,
    batch_size: int | None = None,
) -> torch.Tensor:
    """``logits: [B, V]`` -> ``[B]`` token ids, greedy or temperature / top-p sampled.

    A sampled row costs one uniform draw from ``generator``, inverted through the row's
    cumulative distribution: the same distribution as ``torch.multinomial``, which on CPU
    draws one exponential per vocabulary entry and costs ~20x more per step.
    ``rows`` / ``batch_size``: the logits are rows ``rows`` of a batch of ``batch_size``;
    ``batch_size`` uniforms are drawn and row ``rows[i]``'s is used, so a row's draws do not
    depend on which other rows are still being sampled.
    """
    if config.temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / config.temperature, dim=-1)
    order = None
    if config.top_p < 1:
        probs, order = probs.sort(dim=-1, descending=True)
        # Drop a token when the mass before it already reaches top_p; the top token always stays.
        mass_before = probs.cumsum(dim=-1) - probs
        probs = probs.masked_fill(mass_before >= config.top_p, 0.0)
    cdf = probs.cumsum(dim=-1)
    total = cdf[:, -1:]
    draws = (batch_size or len(total), 1)
    uniform = torch.rand(draws, generator=generator, device=total.device, dtype=total.dtype)
    if rows is not None:
        uniform = uniform[rows]
    # u in [0, total) strictly, so the first index with cdf > u always has probability > 0.
    u = torch.minimum(uniform * total, torch.nextafter(total, torch.zeros_like(total)))
    index = torch.searchsorted(cdf, u, right=True)
    return (index if order is None else order.gather(-1, index)).squeeze(-1)


class _StopWatch:
    """Incremental detokeniser + stop-rule check for the unfinished rows of one batch."""

    def __init__(self, tokenizer, batch_size: int, stop_strings: tuple[str, ...]):
        self.tokenizer = tokenizer
        self.stop_strings = stop_strings
        self.tokens: list[list[int]] = [[] for _ in range(batch_size)]
        self.texts = [""] * batch_size
        self.prefix_offset = [0] * batch_size
        self.read_offset = [0] * batch_size

    def stopped_rows(self, rows: list[int], new_tokens: list[int]) -> list[int]:
        """Append ``new_tokens[i]`` to row ``rows[i]``; return the rows whose text now stops."""
        windows = []
        for row, token in zip(rows, new_tokens):
            tokens = self.tokens[row]
            tokens.append(token)
            windows.append(tokens[self.prefix_offset[row] : self.read_offset[row]])
            windows.append(tokens[self.prefix_offset[row] :])
        decoded = self.tokenizer.batch_decode(windows, skip_special_tokens=True)
        stopped = []
        for i, row in enumerate(rows):
            prefix_text, window_text = decoded[2 * i], decoded[2 * i + 1]
            # A trailing U+FFFD is an incomplete multi-byte character: wait for more tokens.
            if len(window_text) <= len(prefix_text) or window_text.endswith("\ufffd"):
                continue
            self.texts[row] += window_text[len(prefix_text) :]
            self.prefix_offset[row] = self.read_offset[row]
            self.read_offset[row] = len(self.tokens[row])
            if stop_end(self.texts[row], self.stop_strings) is not None:
                stopped.append(row)
        return stopped


def _rows_droppable(cache) -> bool:
    """Whether finished rows can be dropped from ``cache``: a ``DynamicCache`` whose layers
    are all plain (sliding-window) key/value layers."""
    layers = getattr(cache, "layers", None)
    return (
        isinstance(cache, DynamicCache)
        and bool(layers)
        and all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in layers)
    )


def _distinct_rows(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(first, inverse)``: the first row of each distinct (ids, mask) row, in order of
    appearance, and for each row the index of its distinct row (``first[inverse]`` has
    every row's content)."""
    index: dict[tuple, int] = {}
    first, inverse = [], []
    for row, key in enumerate(zip(map(tuple, prompt_ids.tolist()), map(tuple, prompt_mask.tolist()))):
        if key not in index:
            index[key] = len(first)
            first.append(row)
        inverse.append(index[key])
    return torch.tensor(first, dtype=torch.long), torch.tensor(inverse, dtype=torch.long)


# Models whose cache turned out not to copy rows (a recurrent or static layer): their later
# prefills read every row directly instead of a distinct-prompt forward that would be wasted.
_ROWS_NOT_COPYABLE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _prefill(model, prompt_ids, prompt_mask, position_ids, extra: dict):
    """``(logits [B, V] at each row's last prompt position, cache)``: one forward over the
    distinct prompts, whose cache rows are then repeated for the rows that share them (plain
    key/value caches; another cache type gets a forward over every row, and the model is
    remembered so that its next prefill does not try the distinct forward again)."""
    first, inverse = (t.to(prompt_ids.device) for t in _distinct_rows(prompt_ids, prompt_mask))
    if len(first) == len(inverse) or model in _ROWS_NOT_COPYABLE:
        return _prefill_every_row(model, prompt_ids, prompt_mask, position_ids, extra)
    out = model(
        input_ids=prompt_ids[first],
        attention_mask=prompt_mask[first],
        position_ids=position_ids[first],
        use_cache=True,
        **extra,
    )
    if not _rows_droppable(out.past_key_values):  # rows cannot be copied in this cache
        _ROWS_NOT_COPYABLE[model] = True
        return _prefill_every_row(model, prompt_ids, prompt_mask, position_ids, extra)
    out.past_key_values.batch_select_indices(inverse)
    return out.logits[inverse, -1, :], out.past_key_values


def _prefill_every_row(model, prompt_ids, prompt_mask, position_ids, extra: dict):
    out = model(
        input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=position_ids, use_cache=True, **extra
    )
    return out.logits[:, -1, :], out.past_key_values


@torch.no_grad()
def _decode_loop(model, prompt_ids, prompt_mask, config, generator, pad_id, eos_ids, tokenizer):
    batch_size, prompt_len = prompt_ids.shape
    device = prompt_ids.device
    takes_logits_to_keep = "logits_to_keep" in inspect.signature(model.forward).parameters
    extra = {"logits_to_keep": 1} if takes_logits_to_keep else {}

    completion_ids = torch.full((batch_size, config.max_new_tokens), pad_id, dtype=torch.long, device=device)
    lengths = [config.max_new_tokens] * batch_size
    active = torch.ones(batch_size, dtype=torch.bool, device=device)  # not yet stopped (eos / stop string)
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device)
    watch = _StopWatch(tokenizer, batch_size, config.stop_strings) if config.stop_strings else None

    # Left padding: positions count real tokens only, so every row's first token sits at 0.
    attention_mask = torch.ones(
        (batch_size, prompt_len + config.max_new_tokens), dtype=torch.long, device=device
    )
    attention_mask[:, :prompt_len] = prompt_mask
    position_ids = (prompt_mask.cumsum(dim=-1) - 1).clamp(min=0)
    logits, cache = _prefill(model, prompt_ids, prompt_mask, position_ids, extra)
    next_position = position_ids[:, -1:] + 1

    # The batch shrinks as rows finish: the cache, mask and positions keep the live rows
    # (``live``, in batch order) when the cache holds only plain key/value layers (a
    # recurrent or static layer could not drop rows); otherwise every row runs to the end.
    compact = _rows_droppable(cache)
    live = torch.arange(batch_size, device=device)
    steps = 0
    for step in range(config.max_new_tokens):
        steps = step + 1
        live_tokens = next_tokens(logits, config, generator, live, batch_size)
        tokens = torch.full((batch_size,), pad_id, dtype=torch.long, device=device)
        tokens[live] = live_tokens
        tokens = torch.where(active, tokens, pad_id)
        completion_ids[:, step] = tokens

        done = (torch.isin(tokens, eos) & active).nonzero().flatten().tolist()
        if watch is not None:
            token_list = tokens.tolist()
            rows = [row for row in active.nonzero().flatten().tolist() if row not in done]
            done.extend(watch.stopped_rows(rows, [token_list[row] for row in rows]))
        for row in done:
            lengths[row] = step + 1
        active[done] = False
        if not active.any() or step + 1 == config.max_new_tokens:
            break
        if done and compact:
            keep = active[live].nonzero().flatten()
            cache.batch_select_indices(keep)
            live, next_position, attention_mask = live[keep], next_position[keep], attention_mask[keep]

        out = model(
            input_ids=tokens[live][:, None],
            attention_mask=attention_mask[:, : prompt_len + step + 1],
            position_ids=next_position,
            past_key_values=cache,
            use_cache=True,
            **extra,
        )
        cache, logits = out.past_key_values, out.logits[:, -1, :]
        next_position = next_position + 1

    completion_ids = completion_ids[:, :steps]
    length_t = torch.tensor(lengths, device=device)
    completion_mask = (torch.arange(steps, device=device)[None, :] < length_t[:, None]).long()
    return completion_ids, completion_mask, (~active).tolist()  # finished: stopped before the token limit


def sample(
    model, tokenizer, prompts: list[str], config: SamplingConfig, generator: torch.Generator
) -> SampleBatch:
    """Sample one completion for each of ``prompts`` (already rendered prompt strings,
    tokenised without adding special tokens) from ``model`` (any HF causal LM).

    ``generator`` drives every random draw and must live on the model's device. The model
    runs in eval mode under ``torch.no_grad`` (not inference mode, so the returned
    tensors can feed a forward pass that needs gradients) and is put back in its previous mode;
    the tokenizer is not modified (padding is done here, on the left, with
    ``tokenizer.pad_token_id`` or, failing that, the eos id). Returns a ``SampleBatch``.
    """
    if not prompts:
        raise ValueError("sample() needs at least one prompt, got an empty list")
    pad_id = pad_token_id(tokenizer)
    if pad_id is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has neither a pad token nor an eos token")
    device = model.device
    if generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device} but the model is on {device}; create it there")

    token_lists = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    empty = [i for i, tokens in enumerate(token_lists) if not tokens]
    if empty:
        raise ValueError(f"prompts {empty} tokenise to no tokens; every prompt needs at least one")
    prompt_ids, prompt_mask = _left_pad(token_lists, pad_id)
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)

    was_training = model.training
    model.eval()
    try:
        completion_ids, completion_mask, finished = _decode_loop(
            model, prompt_ids, prompt_mask, config, generator, pad_id, _eos_ids(model, tokenizer), tokenizer
        )
    finally:
        model.train(was_training)

    lengths = completion_mask.sum(dim=-1).tolist()
    texts = tokenizer.batch_decode(
        [ids[:n] for ids, n in zip(completion_ids.tolist(), lengths)], skip_special_tokens=True
    )
    if config.stop_strings:
        texts = [text[: stop_end(text, config.stop_strings) or len(text)] for text in texts]
    return SampleBatch(prompt_ids, prompt_mask, completion_ids, completion_mask, texts, finished)
