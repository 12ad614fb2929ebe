"""trl's GRPOTrainer whose HF-path rollouts come from a merged copy of the policy
(trainers/_rollout.py says how and why). It imports trl: trainers/grpo.py imports it when it
trains, never at import, so the configs and :mod:`trainers._rollout` stay torch-free."""

from __future__ import annotations

from typing import Any

import trl

from trainers._rollout import merged_copy, sample, sync

__all__ = ["CopyRolloutTrainer"]


class CopyRolloutTrainer(trl.GRPOTrainer):
    """trl's GRPOTrainer taking ``rollout_dtype=`` (a :func:`trainers._rollout.copy_dtype`;
    None: trl's own generation) whose HF-path rollouts come from a merged copy."""

    def __init__(self, *args: Any, rollout_dtype, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.rollout_dtype, self.rollout_model, self._rollout_step = rollout_dtype, None, None

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        if (
            self.rollout_dtype is None
            or self.use_vllm
            or self.use_transformers_continuous_batching
            or images
            or multimodal_fields
            or self.args.generation_kwargs  # settings the sampler does not apply
        ):
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        policy = self.accelerator.unwrap_model(self.model_wrapped)
        if self.rollout_model is None:
            self.rollout_model = merged_copy(policy, self.rollout_dtype)
        elif self._rollout_step != self.state.global_step:  # the optimizer stepped since
            sync(self.rollout_model, policy)
        self._rollout_step = self.state.global_step
        completions = sample(
            self.rollout_model,
            prompt_ids,
            max_new_tokens=self.max_completion_length,
            eos_token_ids=list(self.eos_token_ids),
            pad_token_id=self._tokenizer.pad_token_id,
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
        )
        return completions, None
