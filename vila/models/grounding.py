"""The embedded backbone's grounding heads: its pretraining losses on the Q-Former's query outputs, and the image-text
match score (ITM) the selection study's training-free selectors read. Saved beside the backbone, never part of a
model that answers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from vila.io import read_safetensors

if TYPE_CHECKING:
    from vila.models.modeling import ViLAModel

GROUNDING_HEADS_FILE = "grounding_heads.safetensors"  # in the backbone's directory (the embedded backbone only)


class GroundingHeads(torch.nn.Module):
    """Pretraining heads on the Q-Former's query outputs, saved beside the backbone (GROUNDING_HEADS_FILE) but
    never part of a model that answers: the answering models start from the backbone alone.

    BLIP-2 first trains the Q-Former's representation with losses that do not pass through the LLM.
    Here the first query must ground the object the instruction names (its quadrant, shape, and the
    colour beside it) and all queries together describe every quadrant. Measured on this benchmark:
    with the LM loss alone, the from-scratch model stays at chance for 400+ steps, because the T5
    learns the answer-letter prior and the image pathway never becomes informative.
    """

    def __init__(self, width: int, queries: int, colours: int, shapes: int) -> None:
        super().__init__()
        self.quadrant = torch.nn.Linear(width, 5)
        self.shape = torch.nn.Linear(width, shapes + 1)
        self.partner = torch.nn.Linear(width, colours + 1)
        self.quad_colour = torch.nn.Linear(width * queries, 4 * (colours + 1))
        self.quad_shape = torch.nn.Linear(width * queries, 4 * (shapes + 1))

    @classmethod
    def for_model(cls, model: ViLAModel) -> GroundingHeads:
        from vila.data import synthqa

        bb = model.config.backbone_config
        return cls(bb.qformer_config.hidden_size, bb.num_query_tokens, len(synthqa.COLOURS), len(synthqa.SHAPES))

    def match_probability(self, queries: torch.Tensor) -> torch.Tensor:
        """queries [..., Q, D] of (frame, question) -> P(the frame shows the object the question names) [...]: one
        minus the quadrant head's "absent" class. This is the image-text match of BLIP-2's first stage (ITM:
        does this image show what the text says), learnt here within the 5-way quadrant loss (absent, or
        which quadrant) rather than by a separate binary head with mined hard negatives."""
        return 1.0 - torch.softmax(self.quadrant(queries[..., 0, :]).float(), dim=-1)[..., 0]

    def loss(self, queries: torch.Tensor, labels: dict[str, torch.Tensor]) -> torch.Tensor:
        """queries [N, Q, D] (one row per frame), labels per frame."""
        ce = torch.nn.functional.cross_entropy
        first, flat = queries[:, 0], queries.flatten(1)
        n = queries.shape[0]
        return (
            ce(self.quadrant(first), labels["quadrant"])
            + ce(self.shape(first), labels["shape"])
            + ce(self.partner(first), labels["partner"])
            + ce(self.quad_colour(flat).view(n * 4, -1), labels["quad_colour"].reshape(-1))
            + ce(self.quad_shape(flat).view(n * 4, -1), labels["quad_shape"].reshape(-1))
        )


def load_grounding_heads(model: ViLAModel, model_dir: Path) -> GroundingHeads:
    """The backbone's grounding heads (the embedded backbone's ITM score); an InstructBLIP checkpoint has none."""
    path = model_dir / GROUNDING_HEADS_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no image-text matching head. The embedded backbone saves its grounding heads there (rerun the "
            "backbone stage); InstructBLIP checkpoints carry no ITM head (BLIP-2's stage-1 Q-Former does): the "
            "ITM-based selectors need one")
    heads = GroundingHeads.for_model(model)
    heads.load_state_dict(read_safetensors(path))
    return heads.eval()
