"""The fast training paths against the plain ones they replace: the same loss, the same gradients.

- answer-only logits (``sft_loss(answer_only=True)``): the vocabulary projection only where a
  token weight is non-zero, on Llama-, Qwen2- and Gemma3-style models (Gemma's soft-capping
  on), in full and LoRA mode, and through the Trainer;
- prompt-once choice training (``share_prompts=True``): each prompt once, the options as the
  continuation of its expanded KV cache, gradients flowing back through the cache;
- length-grouped batches: seeded, every row once per epoch, less padding than random batches;
- the counts of :mod:`skw2s.hf.efficiency` and their place in the pipeline's ``history_``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skw2s.hf import efficiency as _efficiency
from skw2s.hf.choice_training import _ChoiceCollator, choice_log_likelihoods, train_choice_lm
from skw2s.hf.efficiency import collect_training_stats, parameter_counts, useful_flops
from skw2s.hf.losses import get_loss
from skw2s.hf.models import load_causal_lm
from skw2s.hf.testing import SAMPLE_PROMPTS
from skw2s.hf.training import (
    LengthGroupedSampler,
    encode_sft,
    length_grouped_order,
    logit_selection,
    logits_at,
    padding_fraction,
    seeded_torch,
    sft_loss,
    takes_logit_mask,
    train_causal_lm,
)

ARCHS = ("llama", "qwen2", "gemma3")


def _tiny(arch, seed=0):
    """A tiny random causal LM of ``arch`` (vocabulary 99, hidden 32, 2 layers)."""
    import transformers

    common = dict(vocab_size=99, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                  pad_token_id=0)
    if arch == "llama":
        config, cls = transformers.LlamaConfig(**common), transformers.LlamaForCausalLM
    elif arch == "qwen2":
        config, cls = transformers.Qwen2Config(**common), transformers.Qwen2ForCausalLM
    else:  # soft-capped logits, and a sliding window shorter than the prompts
        config = transformers.Gemma3TextConfig(**common, head_dim=8, final_logit_softcapping=3.0,
                                               sliding_window=4)
        cls = transformers.Gemma3ForCausalLM
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return cls(config)


def _with_mode(model, mode):
    if mode == "full":
        return model
    from peft import LoraConfig, get_peft_model

    with torch.random.fork_rng():
        torch.manual_seed(1)
        return get_peft_model(model, LoraConfig(
            r=4, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            init_lora_weights=False))


def _grads(model):
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


def _assert_same_grads(a, b):
    assert a.keys() == b.keys() and a
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6 * a[k].abs().max().item())


class _RowCounter:
    """Counts the rows the output head projects (a forward hook on it)."""

    def __init__(self, head):
        self.rows = 0
        self.handle = head.register_forward_hook(self)

    def __call__(self, module, args, output):
        self.rows += args[0].reshape(-1, args[0].shape[-1]).shape[0]


def _sft_batch():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 99, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 6:] = 0
    ids[mask == 0] = 0
    weight = torch.zeros(3, 12)
    weight[0, 7:12] = torch.tensor([1.0, 1.0, 0.0, 2.0, 1.0])  # a zero-weight answer token
    weight[1, 5:9] = torch.tensor([1.0, 2.0, 0.5, 3.0])
    weight[2, 3:6] = 1.0
    return ids, mask, weight


@pytest.mark.parametrize("mode", ["full", "lora"])
@pytest.mark.parametrize("arch", ARCHS)
def test_answer_only_loss_and_gradients_equal_the_plain_path(arch, mode):
    model = _with_mode(_tiny(arch), mode).train()
    assert takes_logit_mask(model)
    ids, mask, weight = _sft_batch()
    head = model.get_output_embeddings()
    results = {}
    for answer_only in (False, True):
        model.zero_grad()
        counter = _RowCounter(head)
        loss, _, counts = sft_loss(model, ids, mask, weight, answer_only=answer_only)
        counter.handle.remove()
        loss.backward()
        results[answer_only] = (loss.detach(), _grads(model), counter.rows, counts)
    torch.testing.assert_close(results[True][0], results[False][0], rtol=1e-6, atol=1e-7)
    _assert_same_grads(results[False][1], results[True][1])
    n_weighted = int((weight[:, 1:] > 0).sum())
    assert results[True][2] == n_weighted == 11  # the head saw the weighted positions only
    assert results[False][2] == ids.numel()
    assert results[True][3]["projected_rows"] == n_weighted
    assert results[True][3]["loss_rows"] == results[False][3]["loss_rows"] == n_weighted
    assert results[True][3]["tokens"] == int(mask[:, :-1].sum())  # the last column is not fed
    assert results[False][3]["tokens"] == int(mask.sum())
    assert results[True][3]["useful_tokens"] == int(mask.sum()) - 3  # each row's last token


@pytest.mark.parametrize("arch", ARCHS)
def test_columns_selection_equals_the_plain_path(arch):
    """transformers releases whose models take a 1-D tensor of positions but no mask: the
    columns that hold an answer position in some row, for every row."""
    model = _with_mode(_tiny(arch), "lora").train()
    ids, mask, weight = _sft_batch()
    results = {}
    for how in (None, "columns"):
        model.zero_grad()
        loss, _, counts = sft_loss(model, ids, mask, weight, answer_only=how is not None,
                                   masked=how)
        loss.backward()
        results[how] = (loss.detach(), _grads(model), counts)
    torch.testing.assert_close(results["columns"][0], results[None][0], rtol=1e-6, atol=1e-7)
    _assert_same_grads(results[None][1], results["columns"][1])
    columns = int((weight[:, 1:] > 0).any(0).sum())
    assert results["columns"][2]["projected_rows"] == ids.shape[0] * columns < ids.numel()
    assert logit_selection(model) in ("mask", "columns")


def test_gemma_soft_capping_is_applied_on_the_kept_rows():
    model = _tiny("gemma3").eval()
    ids, mask, weight = _sft_batch()
    keep = torch.zeros_like(mask, dtype=torch.bool)
    keep[:, :-1] = weight[:, 1:] > 0
    with torch.no_grad():
        rows, _, projected = logits_at(model, keep, input_ids=ids, attention_mask=mask)
        full = model(input_ids=ids, attention_mask=mask).logits
    assert projected == int(keep.sum())
    torch.testing.assert_close(rows, full[keep])
    assert rows.abs().max() <= 3.0  # capped at final_logit_softcapping


class _IgnoresTheMask(torch.nn.Module):
    """A model that takes ``logits_to_keep`` but returns logits at every position."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def forward(self, input_ids, attention_mask, logits_to_keep=0):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def test_a_model_that_returns_other_shapes_falls_back_to_every_logit(caplog):
    model = _IgnoresTheMask(_tiny("llama")).eval()
    ids, mask, weight = _sft_batch()
    expected, _, _ = sft_loss(model, ids, mask, weight, answer_only=False)
    with caplog.at_level("WARNING", logger="skw2s.hf.training"):
        loss, _, counts = sft_loss(model, ids, mask, weight, masked=True)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)
    assert counts["projected_rows"] == ids[:, :-1].numel()  # every fed position
    assert "computing all logits" in caplog.text


def test_an_unrecognised_forward_is_not_given_a_mask():
    model = _IgnoresTheMask(_tiny("llama"))
    assert not takes_logit_mask(model)  # its module does not slice with slice_logits_to_keep
    ids, mask, weight = _sft_batch()
    loss, _, counts = sft_loss(model, ids, mask, weight, masked=takes_logit_mask(model))
    expected, _, _ = sft_loss(model, ids, mask, weight, answer_only=False)
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)
    assert counts["projected_rows"] == ids[:, :-1].numel()


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_sft_training_with_answer_only_logits_equals_the_plain_path(tiny_lm, mode):
    prompts = [p for p in SAMPLE_PROMPTS] * 2
    answers = [" carbon dioxide", " blue", " yes", " one hundred", " the sun"] * 2
    weights, trained = None, {}
    for answer_only in (False, True):
        model, tok = load_causal_lm(tiny_lm, device="cpu")
        enc = encode_sft(tok, prompts, answers)
        if weights is None:
            weights = [np.arange(1, e.n_answer_tokens + 1) % 3 for e in enc]  # zeros among them
        counter = _RowCounter(model.lm_head)
        with seeded_torch(0), collect_training_stats() as stats:  # seeded LoRA matrices
            model = train_causal_lm(model, tok, enc, weights, mode=mode, lr=1e-2, n_epochs=2,
                                    batch_size=4, random_state=0, answer_only=answer_only)
        counter.handle.remove()
        trained[answer_only] = ({k: v.detach().clone() for k, v in model.state_dict().items()},
                                stats, counter.rows)
    n_rows = 2 * sum(int(np.count_nonzero(w)) for w in weights)  # two epochs
    plain, fast = trained[False], trained[True]
    assert fast[1].projected_rows == fast[1].loss_rows == n_rows == fast[2]
    assert plain[1].projected_rows == plain[1].padded_tokens == plain[2] > n_rows
    assert fast[1].useful_flops == plain[1].useful_flops > 0
    for k, v in plain[0].items():
        torch.testing.assert_close(fast[0][k], v, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------
# Prompt-once choice training
# ----------------------------------------------------------------------------
def _choice_items(seed=1):
    """Questions with prompts and options of different lengths; the fourth question repeats
    the second's prompt (consecutive questions with one prompt share its forward)."""
    g = torch.Generator().manual_seed(seed)

    def rand(n):
        return torch.randint(1, 99, (n,), generator=g).tolist()

    items = []
    for plen, olens in [(5, [1, 3, 7]), (9, [2, 2]), (3, [4, 1, 6, 2]), (9, [1, 5])]:
        prompt = rand(plen)
        items.append({"seqs": [prompt + rand(k) for k in olens], "starts": [plen] * len(olens),
                      "label": 0, "weight": 1.0})
    items[3]["seqs"] = [items[2]["seqs"][0][:3] + rand(2), items[2]["seqs"][0][:3] + rand(1)]
    items[3]["starts"] = [3, 3]
    return items


@pytest.mark.parametrize("mode", ["full", "lora"])
@pytest.mark.parametrize("arch", ARCHS)
def test_prompt_once_log_likelihoods_and_gradients_equal_the_plain_path(arch, mode):
    model = _with_mode(_tiny(arch), mode).train()
    items = _choice_items()
    head = model.get_output_embeddings()
    results = {}
    for share in (False, True):
        model.zero_grad()
        batch = _ChoiceCollator(0, share_prompts=share)(items)
        counter = _RowCounter(head)
        loglik, n_tokens, _, counts = choice_log_likelihoods(model, batch)
        counter.handle.remove()
        (loglik * torch.linspace(0.5, 1.5, len(loglik))).sum().backward()
        results[share] = (loglik.detach(), n_tokens, _grads(model), counts, counter.rows)
    plain, shared = results[False], results[True]
    torch.testing.assert_close(shared[0], plain[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(shared[1], plain[1])
    _assert_same_grads(plain[2], shared[2])
    n_options, n_option_tokens = 11, 31
    prompts = 3  # the fourth question's prompt is the third's
    assert shared[4] == shared[3]["projected_rows"] == prompts + n_option_tokens - n_options
    assert shared[3]["loss_rows"] == plain[3]["loss_rows"] == shared[4]
    assert plain[4] == plain[3]["projected_rows"] == plain[3]["padded_tokens"]
    assert shared[3]["useful_tokens"] == plain[3]["useful_tokens"] == (5 + 9 + 3) + 31 - 11
    assert shared[3]["tokens"] == shared[3]["useful_tokens"]  # prompts once, no last tokens
    assert plain[3]["tokens"] > shared[3]["tokens"]


@pytest.mark.parametrize("choice_score", ["sum", "mean"])
@pytest.mark.parametrize("mode", ["full", "lora"])
def test_prompt_once_choice_training_equals_the_plain_path(tiny_lm, mode, choice_score):
    choices = [["carbon dioxide", "oxygen", "a gas that is very common in the air"],
               ["blue", "x"], ["yes", "no"], ["100", "one hundred degrees at sea level", "0"],
               ["A", "B", "C", "D"]]
    labels = [0, 0, 0, 1, 2]
    trained = {}
    for share in (False, True):
        model, tok = load_causal_lm(tiny_lm, device="cpu")
        with seeded_torch(0), collect_training_stats() as stats:
            model = train_choice_lm(
                model, tok, SAMPLE_PROMPTS, choices, labels, get_loss("choice_logconf"),
                mode=mode, lr=1e-2, n_epochs=2, batch_size=2, max_length=24,
                choice_score=choice_score, random_state=0, share_prompts=share,
            )
        trained[share] = ({k: v.detach().clone() for k, v in model.state_dict().items()}, stats)
    plain, shared = trained[False], trained[True]
    assert shared[1].useful_flops == plain[1].useful_flops > 0
    assert shared[1].projected_rows < plain[1].projected_rows
    assert shared[1].tokens < plain[1].tokens
    for k, v in plain[0].items():  # Adam scales float noise in near-zero gradients up a little
        torch.testing.assert_close(shared[0][k], v, rtol=1e-3, atol=1e-4)


def test_prompt_once_needs_a_prompt_token(tiny_lm):
    model, tok = load_causal_lm(tiny_lm, device="cpu")
    tok.bos_token = None
    with pytest.raises(ValueError, match="at least one token"):
        train_choice_lm(model, tok, [""], [["a", "b"]], [0], get_loss("choice_xent"),
                        random_state=0)


# ----------------------------------------------------------------------------
# Length-grouped batches
# ----------------------------------------------------------------------------
def _lengths(n=300, seed=0):
    return np.random.default_rng(seed).integers(20, 120, size=n)


def test_length_grouped_batches_are_seeded_and_cover_every_row_once():
    lengths = _lengths()
    sampler = LengthGroupedSampler(lengths, 8, seed=5)
    first, second = list(sampler), list(sampler)  # epochs 0 and 1
    assert sorted(first) == sorted(second) == list(range(len(lengths)))
    assert first != second
    again = LengthGroupedSampler(lengths, 8, seed=5)
    assert list(again) == first
    again.set_epoch(1)
    assert list(again) == second
    assert list(LengthGroupedSampler(lengths, 8, seed=6)) != first


def test_length_grouped_batches_pad_less_than_random_ones():
    lengths = _lengths()
    rng = np.random.default_rng(0)
    order = length_grouped_order(lengths, 8, rng)
    grouped = [order[i : i + 8] for i in range(0, len(order), 8)]
    shuffled = rng.permutation(len(lengths))
    random = [shuffled[i : i + 8] for i in range(0, len(shuffled), 8)]
    assert padding_fraction(lengths, grouped) < 0.5 * padding_fraction(lengths, random)
    # 300 rows: 37 full batches and a short last one, which stays last
    assert len(grouped[-1]) == 4 and all(len(b) == 8 for b in grouped[:-1])


def test_small_data_is_one_batch_per_pool():
    lengths = [5, 1, 4, 2, 3, 6]
    order = length_grouped_order(lengths, 4, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(6))


def test_training_groups_batches_by_length(tiny_lm):
    prompts = ["Q: " + "word " * k + "?" for k in (1, 30, 2, 28, 3, 29, 4, 31)] * 6
    padded = {}
    for group in (False, True):
        model, tok = load_causal_lm(tiny_lm, device="cpu")
        enc = encode_sft(tok, prompts, [" yes"] * len(prompts))
        with collect_training_stats() as stats:
            train_causal_lm(model, tok, enc, lr=1e-3, n_epochs=1, batch_size=2, random_state=0,
                            group_by_length=group)
        padded[group] = stats.padding
    assert padded[True] < 0.5 * padded[False]


# ----------------------------------------------------------------------------
# Counts and useful FLOPs
# ----------------------------------------------------------------------------
def test_parameter_counts_split_body_head_and_trained_weights():
    model = _tiny("llama")
    full = parameter_counts(model, model.get_output_embeddings())
    n_embed = model.get_input_embeddings().weight.numel()
    assert full["head"] == full["head_trained"] == 99 * 32
    assert full["body"] == full["body_trained"]
    assert full["body"] == sum(p.numel() for p in model.parameters()) - n_embed - 99 * 32
    lora = _with_mode(model, "lora")
    hf = lora.get_base_model()
    counts = parameter_counts(hf, hf.get_output_embeddings())
    n_adapters = sum(p.numel() for n, p in lora.named_parameters() if "lora_" in n)
    assert counts["body"] == full["body"] + n_adapters
    assert counts["body_trained"] == n_adapters
    assert counts["head_trained"] == 0
    # full fine-tuning: 6 FLOPs per weight and token; LoRA: 4, plus 6 per adapter weight
    assert useful_flops(full, 10, 0) == 6 * full["body"] * 10
    expected = (4 * counts["body"] + 2 * n_adapters) * 10 + 4 * 99 * 32 * 2
    assert useful_flops(counts, 10, 2) == expected


def test_tied_embeddings_count_once_as_the_head():
    import transformers

    config = transformers.LlamaConfig(vocab_size=99, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=1, num_attention_heads=4,
                                      num_key_value_heads=2, tie_word_embeddings=True)
    model = transformers.LlamaForCausalLM(config)
    counts = parameter_counts(model, model.get_output_embeddings())
    assert counts["head"] == 99 * 32
    assert counts["body"] == sum(p.numel() for p in model.parameters()) - 99 * 32


def test_collectors_nest_and_matmul_rate_is_measured_once():
    outer_run = _efficiency.TrainingStats(runs=1, seconds=2.0, useful_flops=4.0, tokens=3,
                                          padded_tokens=4)
    with collect_training_stats() as outer:
        _efficiency.publish(outer_run)
        with collect_training_stats() as inner:
            _efficiency.publish(outer_run)
    _efficiency.publish(outer_run)  # no block open: counted nowhere
    assert (outer.runs, inner.runs) == (2, 1)
    assert outer.padding == pytest.approx(0.25)
    assert outer.efficiency(rate=1.0) == pytest.approx(2.0)  # 8 FLOPs in 4 s at 1 FLOP/s
    assert _efficiency.TrainingStats().efficiency(rate=1.0) is None
    rate = _efficiency.matmul_rate(size=64, repeats=2)
    assert rate > 0 and _efficiency.matmul_rate(size=64, repeats=2) == rate
    state = torch.random.get_rng_state()
    _efficiency.matmul_rate(size=64, repeats=2, cached=False)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is untouched
