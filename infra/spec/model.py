"""Keys of the model being served: which checkpoint, its name, its shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from infra.planning.shapes import DTYPE_BYTES, KNOWN_MODELS, ModelShape
from infra.spec.base import Keys, SpecError, no_newline, qualified

if TYPE_CHECKING:
    from infra.spec.stack import StackSpec


class ModelKeys(Keys):
    """The model: checkpoint id or path, served name, shape overrides."""

    model: str = Field(
        min_length=1,
        description="Hugging Face model id (Qwen/Qwen2.5-72B-Instruct) or an absolute path to a "
        "local checkpoint on the node (/fsx/models/my-model).",
    )
    served_model_name: str = Field(
        "", description="Name clients send as `model` in OpenAI requests; empty = the model id."
    )
    model_params_billion: float = Field(
        0.0,
        ge=0,
        description="Total parameters in billions (all experts for MoE). Needed only for models "
        "the project has no shape for; 0 = use the known shape.",
    )
    model_dtype: Literal["", "bfloat16", "float16", "float32", "float8", "int8", "int4"] = Field(
        "", description="Weight dtype for the memory-fit check; empty = the known shape's dtype."
    )
    trust_remote_code: bool = Field(
        False, description="Pass --trust-remote-code to SGLang (models with custom code)."
    )

    @field_validator("model", "served_model_name")
    @classmethod
    def _model_single_line(cls, v: str) -> str:
        return no_newline(v)

    @field_validator("served_model_name")
    @classmethod
    def _served_name(cls, v: str) -> str:
        # SGLang 0.5.23 refuses ':' in --served-model-name (arg_groups/validation_hook.py).
        if ":" in v:
            raise ValueError("may not contain ':' (SGLang refuses it)")
        return v

    @property
    def served_name(self) -> str:
        """The name clients use in requests."""
        return self.served_model_name or self.model

    def shape(self) -> ModelShape:
        """The model shape: the known one, overridden by ``model_params_billion``/``model_dtype``.

        Raises:
            SpecError: for an unknown model without ``model_params_billion`` and ``model_dtype``.
        """
        known = KNOWN_MODELS.get(self.model)
        if known is None:
            if not self.model_params_billion or not self.model_dtype:
                raise SpecError(
                    qualified("model_params_billion"),
                    f"model {self.model!r} has no known shape; set model_params_billion and "
                    f"model_dtype (one of {', '.join(DTYPE_BYTES)}). Known models: "
                    f"{', '.join(KNOWN_MODELS)}",
                )
            return ModelShape(self.model_params_billion, self.model_dtype)
        return ModelShape(
            self.model_params_billion or known.params_billion,
            self.model_dtype or known.dtype,
            known.layers,
            known.attention_heads,
            known.experts,
        )


def check(spec: StackSpec) -> None:
    """Rules between the model keys and the rest of the spec.

    Raises:
        SpecError: ``served_model_name`` missing for a local checkpoint path.
    """
    if spec.served_model_name == "" and spec.model.startswith("/"):
        raise SpecError(
            qualified("served_model_name"),
            "required when model is a local path (clients need a stable name)",
        )
