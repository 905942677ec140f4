"""Inference of the generation estimators, written once for a mixture of experts.

:class:`GenerationMixin` gives :class:`~skw2s.LLMGenerator` and the generator ensembles their
``generate``, ``predict``, ``predict_proba``, ``score``, ``token_error``, ``token_mistakes``
and ``answer_lengths``, running a weighted mixture of experts through :mod:`skw2s.decoding`;
a single fine-tuned model is the mixture of one expert, so both use the same code.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..hf import decoding
from ..data.inputs import check_generation_input, check_generation_target
from ..hf.training import encode_sft

__all__ = ["GenerationMixin", "pad_proba"]


def pad_proba(nll_rows):
    """Softmax over ``-nll`` per row, padded with 0 to the widest row."""
    width = max(len(r) for r in nll_rows)
    out = np.zeros((len(nll_rows), width))
    for i, r in enumerate(nll_rows):
        z = -np.asarray(r, dtype=np.float64)
        z = np.exp(z - z.max())
        out[i, : len(r)] = z / z.sum()
    return out


class GenerationMixin:
    """Inference methods of the generation estimators, written once for a mixture of experts.

    A subclass provides ``_mixture_parts()`` returning ``(experts, alphas, combine)``,
    ``_settings()`` returning ``batch_size``, ``max_length``, ``max_new_tokens``,
    ``choice_score`` and ``random_state``, and the fitted ``tokenizer_``. A single model is the
    mixture of one expert. The ``staged=True`` option of the private helpers returns one result
    per prefix of the experts (the ensemble's ``staged_*`` methods).
    """

    def _choice_nll(self, inputs, *, staged=False):
        experts, alphas, combine = self._mixture_parts()
        s = self._settings()
        return decoding.choice_nll_mixture(
            experts, alphas, self.tokenizer_, inputs.prompts, inputs.choices, combine=combine,
            reduction=s["choice_score"], batch_size=s["batch_size"], max_length=s["max_length"],
            staged=staged, verbose=getattr(self, "verbose", 0),
        )

    def _token_mistakes(self, X, y, *, staged=False):
        """Flat 0/1 mistakes of teacher-forced argmax on the answers of ``(X, y)``."""
        inputs = check_generation_input(X)
        answers, _ = check_generation_target(y, inputs)
        s = self._settings()
        encoded = encode_sft(self.tokenizer_, inputs.prompts, answers, max_length=s["max_length"])
        experts, alphas, combine = self._mixture_parts()
        preds = decoding.token_predictions_mixture(
            experts, alphas, self.tokenizer_, encoded, combine=combine,
            batch_size=s["batch_size"], staged=staged,
            verbose=getattr(self, "verbose", 0),
        )
        stages = preds if staged else [preds]
        return [decoding.answer_token_errors(encoded, p)[0] for p in stages]

    def _generate_tokens(self, prompts, experts, alphas, combine, *, max_new_tokens, do_sample,
                         temperature, random_state, speculative_k=None, draft_expert=None):
        s = self._settings()
        return decoding.mixture_generate(
            experts, alphas, self.tokenizer_, prompts, combine=combine,
            max_new_tokens=s["max_new_tokens"] if max_new_tokens is None else max_new_tokens,
            do_sample=do_sample, temperature=temperature,
            random_state=s["random_state"] if random_state is None else random_state,
            batch_size=s["batch_size"], max_length=s["max_length"],
            speculative_k=speculative_k, draft_expert=draft_expert,
            verbose=getattr(self, "verbose", 0),
        )

    def _decode(self, tokens, return_tokens):
        if return_tokens:
            return tokens
        return self.tokenizer_.batch_decode(tokens, skip_special_tokens=True)

    def generate(
        self, X, *, max_new_tokens=None, do_sample=False, temperature=1.0, random_state=None,
        return_tokens=False, speculative_k=None, draft_expert=None,
    ):
        """Generate an answer for each prompt (choices, when present, are ignored).

        Parameters
        ----------
        X : DataFrame or list of str
            Prompts in the generation input format (see :mod:`skw2s.data.inputs`).
        max_new_tokens : int, default=None
            Most tokens to generate per prompt; default: the ``max_new_tokens`` setting.
        do_sample : bool, default=False
            Sample instead of taking the argmax (greedy).
        temperature : float, default=1.0
            Sampling temperature.
        random_state : int, RandomState instance or None, default=None
            Seeds sampling; default: the estimator's ``random_state``.
        return_tokens : bool, default=False
            Return token ids instead of decoded strings.
        speculative_k : int or None, default=None
            Greedy speculative mixture decoding: one expert drafts ``speculative_k`` tokens and
            the mixture verifies them in one forward per expert; the tokens are those of plain
            greedy decoding (see :func:`skw2s.decoding.mixture_generate`). Needs
            ``do_sample=False``. Useful for an ensemble; a single model gains nothing.
        draft_expert : int or None, default=None
            Index of the drafting expert; default: the one with the largest weight.

        Returns
        -------
        list of str, or list of list of int
            The generated continuation of each prompt, without the EOS token.
        """
        check_is_fitted(self)
        inputs = check_generation_input(X)
        experts, alphas, combine = self._mixture_parts()
        tokens = self._generate_tokens(
            inputs.prompts, experts, alphas, combine, max_new_tokens=max_new_tokens,
            do_sample=do_sample, temperature=temperature, random_state=random_state,
            speculative_k=speculative_k, draft_expert=draft_expert,
        )
        return self._decode(tokens, return_tokens)

    def predict(self, X):
        """Predict the answer of each row.

        Parameters
        ----------
        X : DataFrame or list of str
            Generation input (see :mod:`skw2s.data.inputs`).

        Returns
        -------
        ndarray of shape (n_samples,)
            With choices: the index of the choice with the lowest NLL (int64). Without: the
            greedy generated text (object array of str).
        """
        check_is_fitted(self)
        inputs = check_generation_input(X)
        if inputs.has_choices:
            return np.array([int(np.argmin(r)) for r in self._choice_nll(inputs)], dtype=np.int64)
        return np.array(self.generate(inputs.prompts), dtype=object)

    def predict_proba(self, X):
        """Probability of each choice: a softmax over the choices' negative NLLs.

        Parameters
        ----------
        X : DataFrame
            Multiple-choice input with a ``choices`` column.

        Returns
        -------
        ndarray of shape (n_samples, max_n_choices)
            Row ``i`` holds the probabilities of its choices in order; when rows have different
            numbers of choices, the missing entries are 0 (each row still sums to 1).
        """
        check_is_fitted(self)
        inputs = check_generation_input(X, require_choices=True)
        return pad_proba(self._choice_nll(inputs))

    def score(self, X, y):
        """Option accuracy (multiple choice) or token accuracy (free text).

        Parameters
        ----------
        X : DataFrame or list of str
            Generation input.
        y : array-like
            Choice indices (with choices) or answer strings.

        Returns
        -------
        float
            With choices: the fraction of rows whose correct choice has the lowest NLL.
            Without: the fraction of answer tokens (EOS included) that the teacher-forced
            argmax gets right.
        """
        check_is_fitted(self)
        inputs = check_generation_input(X)
        if inputs.has_choices:
            _, indices = check_generation_target(y, inputs)
            return float(np.mean(self.predict(X) == indices))
        return 1.0 - self.token_error(X, y)

    def token_error(self, X, y):
        """Teacher-forced token error on the answers of ``(X, y)``.

        Parameters
        ----------
        X : DataFrame or list of str
            Generation input.
        y : array-like
            Choice indices (the answer is the correct choice's completion) or answer strings.

        Returns
        -------
        float
            The fraction of answer tokens (EOS included), over all rows, whose argmax
            prediction given the gold prefix is wrong.
        """
        check_is_fitted(self)
        return float(np.mean(self.token_mistakes(X, y)))

    def token_mistakes(self, X, y):
        """Teacher-forced mistakes on every answer token of ``(X, y)``, in row order.

        Parameters
        ----------
        X : DataFrame or list of str
            Generation input.
        y : array-like
            Choice indices (the answer is the correct choice's completion) or answer strings.

        Returns
        -------
        ndarray of shape (n_answer_tokens,)
            1.0 where the argmax prediction given the gold prefix is wrong, 0.0 where it is
            right; the rows' answers (EOS included) concatenated, of the lengths
            :meth:`answer_lengths` gives. Boosting measures ``eps_t`` with it.
        """
        check_is_fitted(self)
        return self._token_mistakes(X, y)[0]

    def answer_lengths(self, X, y):
        """Number of answer tokens (EOS included) of each row, as training and scoring see them.

        Parameters
        ----------
        X : DataFrame or list of str
            Generation input.
        y : array-like
            Choice indices or answer strings.

        Returns
        -------
        ndarray of shape (n_samples,), int64
            The lengths that per-token weights (``fit(..., token_weight=...)``) must have.
        """
        check_is_fitted(self)
        inputs = check_generation_input(X)
        answers, _ = check_generation_target(y, inputs)
        encoded = encode_sft(
            self.tokenizer_, inputs.prompts, answers, max_length=self._settings()["max_length"],
            warn=False,
        )
        return np.array([ex.n_answer_tokens for ex in encoded], dtype=np.int64)
