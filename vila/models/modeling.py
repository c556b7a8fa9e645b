"""The ViLA video model, readable top to bottom.

InstructBLIP parts from transformers (vision model, instruction-aware Q-Former with query tokens,
language projection, Flan-T5) composed for video: frames are encoded independently, the Q-Former
runs once per frame, and the projected query tokens of all frames are concatenated in front of the
embedded prompt. The answer is read from the decoder's logits over the option letters at the
position after "Option", restricted to the options a question has.

ViLA adds two modules, each in its own file beside this one:
- the Frame-Prompter (prompter.py): scores every sampled frame (optionally guided by the question) and picks K
  frames with a hard, straight-through Gumbel-softmax (one per segment as released, or a free top-k).
- the QFormer-Distiller (distiller.py): a frozen teacher branch (its own Q-Former, query tokens and projection,
  from the 32-frame model) encodes all T frames; the student's K*Q projected tokens are mapped along
  the token axis to T*Q tokens and matched to the teacher's with an MSE loss.

The baseline of the paper's claims, SeViLA (selector "localizer"): a Localizer (localizer.py: its own Q-Former,
query tokens, LayerNorm on the ViT output and projection) scores each sampled frame by one pass of the frozen LLM
over `Frame: ` + that frame's tokens + the localizer prompt (the "yes" logit at the first decoder step); the top-k
frames, in time order, go to the answering model, whose frames are each preceded by `Frame {i}: `.

Ours, beyond the paper: relevance distillation. The frozen teacher also says which frames its answer
depends on (gradient x input of the right answer's log-probability, per frame), and the Prompter's
per-segment distribution is pulled towards that relevance. The straight-through gradient alone is a
linearisation around the frame chosen now, which says little about a very different frame.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    InstructBlipConfig,
    InstructBlipQFormerModel,
    InstructBlipVisionModel,
    PretrainedConfig,
    PreTrainedModel,
    T5ForConditionalGeneration,
)
from transformers.models.instructblip.modeling_instructblip import InstructBlipVisionEmbeddings

from vila.models.distiller import TeacherBranch, TokenAxisMapper
from vila.models.localizer import Localizer, frame_logits, top_k_in_time_order
from vila.models.prompter import FramePrompter, relevance_loss
from vila.models.qformer import frame_queries, shares_instruction

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ViLAConfig(PretrainedConfig):
    """Backbone sizes (an InstructBlipConfig) plus what this model does with frames.

    frames: frames the answering model reads; sampled_frames: frames per clip before selection.
    selector None = uniform sampling (the teachers); "segment" or "topk" = a Frame-Prompter; "localizer" =
    SeViLA's Localizer. frame_prefix: the answering model reads `Frame {i}: ` before frame i (SeViLA).
    time_signal: each frame the answering model reads has a fixed sinusoidal embedding of its position on the clip's
    sampling grid added to its projected tokens (time_embedding): the embedded backbone's stand-in for the real
    LLM's sense of frame order, the same for every model that answers (off for real InstructBLIP weights).
    The token ids (answer prefix, letters, frame marks, yes/no) are facts of the backbone's tokenizer.
    """

    model_type = "vila_video_instructblip"

    def __init__(
        self,
        backbone: dict[str, Any] | None = None,
        frames: int = 4,
        sampled_frames: int = 32,
        selector: str | None = None,
        gate: str = "text",
        selector_input: str = "vit",
        prompter_hidden: int = 64,
        distill: bool = False,
        released_teacher_qformer: bool = False,
        noisy_eval: bool = False,
        lora: dict[str, Any] | None = None,
        answer_prefix_ids: list[int] | None = None,
        letter_ids: list[int] | None = None,
        frame_prefix: bool = False,
        time_signal: bool = False,
        frame_prefix_ids: list[list[int]] | None = None,
        localizer_prefix_ids: list[int] | None = None,
        yes_no_ids: list[int] | None = None,
        initializer_range: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(backbone, InstructBlipConfig):
            backbone = backbone.to_dict()
        self.backbone = backbone or {}
        self.frames = frames
        self.sampled_frames = sampled_frames
        self.selector = selector
        self.gate = gate
        self.selector_input = selector_input
        self.prompter_hidden = prompter_hidden
        self.distill = distill
        self.released_teacher_qformer = released_teacher_qformer
        self.noisy_eval = noisy_eval
        self.lora = lora
        self.answer_prefix_ids = answer_prefix_ids or []
        self.letter_ids = letter_ids or []
        self.frame_prefix = frame_prefix
        self.time_signal = time_signal
        self.frame_prefix_ids = frame_prefix_ids or []
        self.localizer_prefix_ids = localizer_prefix_ids or []
        self.yes_no_ids = yes_no_ids or []
        self.initializer_range = initializer_range

    @property
    def backbone_config(self) -> InstructBlipConfig:
        return InstructBlipConfig(**self.backbone)


def time_embedding(index: torch.Tensor, width: int) -> torch.Tensor:
    """Fixed sinusoidal embedding [..., width] of frame positions on the sampling grid (index [...], integers): the
    transformer's position encoding, here of a frame's time. Its slow components are monotone over a 32-frame grid,
    so "earlier" is a linear read-out."""
    half = width // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=index.device, dtype=torch.float32) / half)
    angle = index.float()[..., None] * freq
    return torch.cat([angle.sin(), angle.cos()], dim=-1)


STEP_NAMES = ("vit", "select", "qformer", "llm")


@dataclass
class ForwardPass:
    """What one forward pass has so far: the inputs, then what each step adds (ViLAModel.steps)."""

    qformer_ids: torch.Tensor
    qformer_mask: torch.Tensor | None
    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None
    frames: torch.Tensor | None = None  # [B, T, H, W, 3] uint8
    vit_tokens: torch.Tensor | None = None  # [B, T, N, Dv] of every given frame (the cache, or step vit)
    tau: float = 1.0
    frame_index: torch.Tensor | None = None  # [B, F] grid positions of the frames the answering model reads
    localizer_ids: torch.Tensor | None = None  # [B, L] the Localizer's prompt (SeViLA)
    localizer_mask: torch.Tensor | None = None
    weights: torch.Tensor | None = None  # [B, K, T] selection (straight-through)
    chosen: torch.Tensor | None = None  # [B, K] frame indices
    scores: torch.Tensor | None = None  # [B, T] the Prompter's gate scores
    student_vit: torch.Tensor | None = None  # [B, F, N, Dv] ViT tokens of the frames the answerer reads
    visual: torch.Tensor | None = None  # [B, F*Q, Dt] projected query tokens
    vocab_logits: torch.Tensor | None = None  # [B, vocab] at the answer-letter position


@dataclass
class ViLAOutput:
    letter_logits: torch.Tensor  # [B, 5], options a question lacks set to -inf
    loss: torch.Tensor | None = None
    lm_loss: torch.Tensor | None = None
    distill_loss: torch.Tensor | None = None
    relevance_loss: torch.Tensor | None = None
    chosen: torch.Tensor | None = None  # [B, K] indices of the frames the answering model read


class ViLAModel(PreTrainedModel):
    config_class = ViLAConfig
    base_model_prefix = "vila"
    main_input_name = "pixel_values"
    _keys_to_ignore_on_load_unexpected: list[str] = []

    def __init__(self, config: ViLAConfig) -> None:
        super().__init__(config)
        bb = config.backbone_config
        qdim, tdim = bb.qformer_config.hidden_size, bb.text_config.d_model
        # Read on every forward: kept as plain ints (building InstructBlipConfig from its dict costs ~10 ms a time).
        self.image_size, self.num_query_tokens = bb.vision_config.image_size, bb.num_query_tokens
        self.decoder_start_token_id = bb.text_config.decoder_start_token_id
        self.vision_model = InstructBlipVisionModel._from_config(bb.vision_config)
        self.query_tokens = nn.Parameter(torch.zeros(1, bb.num_query_tokens, qdim))
        self.qformer = InstructBlipQFormerModel._from_config(bb.qformer_config)
        self.language_projection = nn.Linear(qdim, tdim)
        self.language_model = T5ForConditionalGeneration._from_config(bb.text_config)
        self.prompter = self.localizer = None
        if config.selector not in (None, "segment", "topk", "localizer"):
            raise ValueError(f"unknown selector {config.selector!r} (None, segment, topk or localizer)")
        if config.selector == "localizer":
            self.localizer = Localizer(bb)
        elif config.selector:
            self.prompter = FramePrompter(
                bb.vision_config.hidden_size, qdim, config.prompter_hidden, config.frames, config.selector, config.gate
            )
        self.teacher = self.token_mapper = None
        if config.distill:
            self.teacher = TeacherBranch(bb)
            q = bb.num_query_tokens
            self.token_mapper = TokenAxisMapper(config.frames * q, config.sampled_frames * q, tdim)
        self.post_init()
        # transformers 5 leaves some sub-model parameters (e.g. the ViT's patch embedding) to a deferred
        # initialisation that a composed model does not trigger; initialise everything but the T5
        # (which initialises itself) explicitly. from_pretrained overwrites all of it.
        for name, module in self.named_modules():
            if not name.startswith("language_model"):
                self._init_weights(module)
        if config.lora:
            self.add_lora(config.lora)
        self.register_buffer("pixel_mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, InstructBlipVisionEmbeddings):
            # Unit-scale position embeddings: a ViT trained from scratch needs position signal as strong
            # as content, or the Q-Former's cross-attention cannot tell where an object is (measured:
            # at std 0.02 a quadrant probe on the query outputs stays at chance). Real weights overwrite it.
            nn.init.normal_(module.position_embedding, std=1.0)
            nn.init.trunc_normal_(module.class_embedding, std=std)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, (ViLAModel, TeacherBranch)):  # TeacherBranch: the Localizer too
            # Random, not zero: identical query tokens would stay identical under training.
            nn.init.normal_(module.query_tokens, std=std)

    # ---- LoRA on the language model (peft) ----
    def add_lora(self, lora: dict[str, Any]) -> None:
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"], target_modules=["q", "v"])
        self.language_model = get_peft_model(self.language_model, cfg)

    def merge_lora(self) -> None:
        """Fold the LoRA deltas into the T5 weights; the result saves and loads as a plain model."""
        if self.config.lora:
            self.language_model = self.language_model.merge_and_unload()
            self.config.lora = None

    # ---- the pieces of a forward pass ----
    def pixels_to_input(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames [..., H, W, 3] -> normalised float [N, 3, S, S] at the ViT's resolution."""
        size = self.image_size
        x = frames.reshape(-1, *frames.shape[-3:]).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (x - self.pixel_mean) / self.pixel_std

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames [B, T, H, W, 3] -> ViT tokens [B, T, N, Dv] (the frozen ViT, run per frame)."""
        b, t = frames.shape[:2]
        tokens = self.vision_model(pixel_values=self.pixels_to_input(frames)).last_hidden_state
        return tokens.view(b, t, *tokens.shape[1:])

    def patch_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        """The cheap selector input [B, T, patches, D]: the ViT's patch embedding of every frame (one linear map per
        patch, no transformer layer, no position embedding). Chosen on val for synthqa v2 (docs/design.md): as they
        are, 94.8 with relevance distillation, against 92.5 centred over the clip's frames (the version-1 choice).
        """
        b, t = frames.shape[:2]
        tokens = self.vision_model.embeddings.patch_embedding(self.pixels_to_input(frames))
        return tokens.flatten(2).transpose(1, 2).reshape(b, t, -1, tokens.shape[1])

    def question_embedding(self, qformer_ids: torch.Tensor, qformer_mask: torch.Tensor | None) -> torch.Tensor:
        emb = self.qformer.embeddings.word_embeddings(qformer_ids)
        if qformer_mask is None:  # every token is real (FLOP counting on the meta device)
            return emb.mean(1)
        mask = qformer_mask.unsqueeze(-1).to(emb.dtype)
        return (emb * mask).sum(1) / mask.sum(1).clamp(min=1.0)

    def qformer_tokens(
        self,
        vit_tokens: torch.Tensor,
        qformer_ids: torch.Tensor,
        qformer_mask: torch.Tensor | None,
        branch: nn.Module | None = None,
    ) -> torch.Tensor:
        """ViT tokens [B, F, N, Dv] -> projected LLM-input tokens [B, F*Q, Dt] (Q-Former once per frame)."""
        branch = branch or self
        queries = self.qformer_queries(vit_tokens, qformer_ids, qformer_mask, branch)
        return branch.language_projection(queries).flatten(1, 2)

    def qformer_queries(
        self,
        vit_tokens: torch.Tensor,
        qformer_ids: torch.Tensor,
        qformer_mask: torch.Tensor | None,
        branch: nn.Module | None = None,
    ) -> torch.Tensor:
        """ViT tokens [B, F, N, Dv] -> Q-Former query outputs [B, F, Q, Dq]."""
        branch = branch or self
        qformer = self.qformer if self.config.released_teacher_qformer else branch.qformer
        b, f, n, d = vit_tokens.shape
        image = vit_tokens.reshape(b * f, n, d)
        if shares_instruction(qformer):  # the same outputs, the instruction's rows computed once per question
            out = frame_queries(qformer, branch.query_tokens, qformer_ids, qformer_mask, image)
            return out.view(b, f, branch.query_tokens.shape[1], -1)
        ids = qformer_ids.repeat_interleave(f, dim=0)
        queries = branch.query_tokens.expand(b * f, -1, -1)
        mask = None  # None = attend to everything (lets FLOP counting run on the meta device)
        if qformer_mask is not None:
            text_mask = qformer_mask.repeat_interleave(f, dim=0)
            ones = torch.ones(queries.shape[:2], dtype=text_mask.dtype, device=text_mask.device)
            mask = torch.cat([ones, text_mask], 1)
        out = qformer(
            input_ids=ids, attention_mask=mask, query_embeds=queries, encoder_hidden_states=image
        ).last_hidden_state[:, : queries.shape[1]]
        return out.view(b, f, queries.shape[1], -1)

    def token_embeddings(self, ids: list[int], device: torch.device) -> torch.Tensor:
        """The frozen LLM's input embeddings of fixed token ids [len(ids), Dt]."""
        return self.language_model.get_input_embeddings()(torch.tensor(ids, device=device))

    def add_time_signal(self, visual: torch.Tensor, frame_index: torch.Tensor | None) -> torch.Tensor:
        """[B, F*Q, Dt] projected tokens + each frame's time_embedding (config.time_signal; frame_index [B, F]: the
        frames' positions on the sampling grid). Unchanged without the time signal."""
        if not self.config.time_signal:
            return visual
        if frame_index is None:
            raise ValueError("a model with the time signal needs frame_index: the grid positions of the frames it reads")
        b, f = frame_index.shape
        emb = time_embedding(frame_index.to(visual.device), visual.shape[-1]).to(visual.dtype)  # [B, F, Dt]
        return (visual.view(b, f, -1, visual.shape[-1]) + emb[:, :, None]).flatten(1, 2)

    def with_frame_prefixes(self, visual: torch.Tensor) -> torch.Tensor:
        """[B, F*Q, Dt] -> [B, F*(P+Q), Dt]: frame i's tokens preceded by the embedded `Frame {i}: ` (SeViLA)."""
        b, q = visual.shape[0], self.num_query_tokens
        f = visual.shape[1] // q
        marks = self.config.frame_prefix_ids[:f]
        if len(marks) < f or len({len(m) for m in marks}) != 1:
            raise ValueError(f"frame_prefix_ids: need {f} frame marks of one length, have {marks}")
        prefix = torch.stack([self.token_embeddings(m, visual.device) for m in marks]).to(visual.dtype)  # [F, P, Dt]
        framed = torch.cat([prefix.expand(b, -1, -1, -1), visual.view(b, f, q, -1)], dim=2)
        return framed.flatten(1, 2)

    def answer_logits(
        self, visual: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Visual tokens [B, V, Dt] + prompt -> vocabulary logits at the answer-letter position [B, vocab]."""
        lm = self.language_model
        embeds = torch.cat([visual, lm.get_input_embeddings()(input_ids)], dim=1)
        mask = None
        if attention_mask is not None:
            ones = torch.ones(visual.shape[:2], dtype=attention_mask.dtype, device=visual.device)
            mask = torch.cat([ones, attention_mask], 1)
        start = self.decoder_start_token_id
        prefix = [start, *self.config.answer_prefix_ids]
        decoder_ids = torch.tensor(prefix, device=visual.device).expand(visual.shape[0], -1)
        out = lm(inputs_embeds=embeds, attention_mask=mask, decoder_input_ids=decoder_ids)
        return out.logits[:, -1]

    def select(
        self,
        selector_tokens: torch.Tensor,
        qformer_ids: torch.Tensor,
        qformer_mask: torch.Tensor,
        tau: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Frame-Prompter -> (weights [B, K, T], chosen indices [B, K], gate scores [B, T])."""
        assert self.prompter is not None
        text = self.question_embedding(qformer_ids, qformer_mask) if self.config.gate == "text" else None
        scores = self.prompter.scores(selector_tokens, text)
        noisy = self.training or self.config.noisy_eval
        return *self.prompter.select_frames(scores, tau, noisy), scores

    # ---- the forward pass as named steps (training, evaluation, the speed breakdown and FLOP counting all
    # run these; see `steps`) ----
    @property
    def selects_before_vit(self) -> bool:
        """The fast design: the Prompter reads cheap patch embeddings, the full ViT only the chosen frames."""
        return self.prompter is not None and self.config.selector_input == "patch_embed"

    def steps(self) -> list[tuple[str, Callable[[ForwardPass], None]]]:
        """The forward pass, (name, step) in the order they run; each step reads and fills a ForwardPass.

        vit: frozen ViT on the frames this design encodes | select: which frames the answering model reads (the
        Frame-Prompter, or SeViLA's Localizer with its per-frame LLM passes) | qformer: Q-Former once per read
        frame, projected to the LLM width | llm: T5 to the answer position.
        """
        order = ("select", "vit", "qformer", "llm") if self.selects_before_vit else STEP_NAMES
        return [(name, getattr(self, f"step_{name}")) for name in order]

    def step_vit(self, p: ForwardPass) -> None:
        if self.selects_before_vit:
            if p.vit_tokens is None:  # end to end: encode only the chosen frames
                picked = torch.gather(p.frames, 1, p.chosen[:, :, None, None, None].expand(-1, -1, *p.frames.shape[2:]))
                p.student_vit = self.encode_frames(picked)
        elif p.vit_tokens is None:
            p.vit_tokens = self.encode_frames(p.frames)

    def step_select(self, p: ForwardPass) -> None:
        if self.localizer is not None:  # SeViLA: the top-k frames by the Localizer's "yes" logit, in time order
            if p.scores is None:  # else this Localizer's scores, already computed (the localize stage's cache)
                if p.localizer_ids is None:
                    raise ValueError("a SeViLA model needs the localizer prompt (Batcher(..., localizer=True))")
                logits = frame_logits(self, p.vit_tokens, p.qformer_ids, p.qformer_mask, p.localizer_ids,
                                      p.localizer_mask)
                p.scores = logits[..., self.config.yes_no_ids[0]]
            p.chosen = top_k_in_time_order(p.scores, self.config.frames)
            p.frame_index = p.chosen
            p.student_vit = torch.gather(
                p.vit_tokens, 1, p.chosen[:, :, None, None].expand(-1, -1, *p.vit_tokens.shape[2:])
            )
            return
        if self.prompter is None:  # uniform: the model reads every frame it is given
            p.student_vit = p.vit_tokens
            return
        selector_tokens = self.patch_embeddings(p.frames) if self.selects_before_vit else p.vit_tokens
        p.weights, p.chosen, p.scores = self.select(selector_tokens, p.qformer_ids, p.qformer_mask, p.tau)
        p.frame_index = p.chosen
        if p.vit_tokens is None:
            return  # fast design end to end: step_vit encodes the chosen frames
        if torch.is_grad_enabled() and p.weights.requires_grad:  # straight-through: gradient reaches the Prompter
            p.student_vit = torch.einsum("bkt,btnd->bknd", p.weights, p.vit_tokens)
        else:
            p.student_vit = torch.gather(
                p.vit_tokens, 1, p.chosen[:, :, None, None].expand(-1, -1, *p.vit_tokens.shape[2:])
            )

    def step_qformer(self, p: ForwardPass) -> None:
        p.visual = self.qformer_tokens(p.student_vit, p.qformer_ids, p.qformer_mask)

    def step_llm(self, p: ForwardPass) -> None:
        visual = self.add_time_signal(p.visual, p.frame_index)
        visual = self.with_frame_prefixes(visual) if self.config.frame_prefix else visual
        p.vocab_logits = self.answer_logits(visual, p.input_ids, p.attention_mask)

    def forward(
        self,
        qformer_ids: torch.Tensor,
        qformer_mask: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        num_options: torch.Tensor,
        vit_tokens: torch.Tensor | None = None,
        frames: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        tau: float = 1.0,
        distill_weight: float = 0.0,
        frame_relevance: torch.Tensor | None = None,
        relevance_weight: float = 0.0,
        localizer_ids: torch.Tensor | None = None,
        localizer_mask: torch.Tensor | None = None,
        distill_target: torch.Tensor | None = None,
        frame_index: torch.Tensor | None = None,
        localizer_scores: torch.Tensor | None = None,
    ) -> ViLAOutput:
        """Answer multiple-choice questions about clips.

        vit_tokens [B, T, N, Dv]: frozen-ViT tokens of every sampled frame (from the feature cache), or
        frames [B, T, H, W, 3] uint8 (end to end; the ViT then runs on what the model needs).
        A uniform model reads all T given frames; a ViLA or SeViLA model selects `config.frames` of them
        (SeViLA also needs localizer_ids/localizer_mask, its Localizer's prompt).
        frame_relevance [B, T]: the teacher's (teacher_frame_relevance), the Prompter's target in training.
        distill_target [B, T*Q, Dt]: the teacher branch's tokens, when cached (else computed here).
        frame_index [B, F]: the grid positions of the given frames (the time signal; a selecting model reads its
        chosen frames' positions).
        localizer_scores [B, T]: a SeViLA model's own Localizer's scores of the T frames, already computed (the
        localize stage caches them; the same "yes" logits this forward would compute).
        """
        if localizer_scores is not None and self.localizer is None:
            raise ValueError("localizer_scores: only a SeViLA model (selector 'localizer') reads its Localizer's scores")
        p = ForwardPass(qformer_ids, qformer_mask, input_ids, attention_mask, frames=frames, vit_tokens=vit_tokens,
                        tau=tau, frame_index=frame_index, localizer_ids=localizer_ids, localizer_mask=localizer_mask,
                        scores=localizer_scores)
        for _, step in self.steps():
            step(p)
        vocab_logits = p.vocab_logits
        letters = torch.tensor(self.config.letter_ids, device=vocab_logits.device)
        letter_logits = vocab_logits[:, letters]
        option_ok = torch.arange(len(letters), device=letters.device)[None] < num_options[:, None]
        letter_logits = letter_logits.masked_fill(~option_ok, float("-inf"))
        out = ViLAOutput(letter_logits=letter_logits, chosen=p.chosen)
        if labels is not None:
            out.lm_loss = F.cross_entropy(vocab_logits, letters[labels])
            out.loss = out.lm_loss
            if self.teacher is not None and distill_weight > 0 and (p.vit_tokens is not None or distill_target is not None):
                target = distill_target
                if target is None:
                    with torch.no_grad():
                        target = self.qformer_tokens(p.vit_tokens, qformer_ids, qformer_mask, branch=self.teacher)
                out.distill_loss = F.mse_loss(self.token_mapper(p.visual), target)
                out.loss = out.lm_loss + distill_weight * out.distill_loss
            if p.scores is not None and frame_relevance is not None and relevance_weight > 0:
                out.relevance_loss = relevance_loss(p.scores, frame_relevance, self.config.frames, self.config.selector)
                out.loss = out.loss + relevance_weight * out.relevance_loss
        return out


def trace_steps(model: ViLAModel, p: ForwardPass) -> list[tuple[str, Callable[[ForwardPass], None], ForwardPass]]:
    """Run the forward pass's steps on `p`; return each step with a copy of the pass as that step found it, so a
    step can be re-run alone on its real inputs (the speed breakdown times it, the FLOP count counts it)."""
    traced = []
    for name, step in model.steps():
        traced.append((name, step, copy.copy(p)))
        step(p)
    return traced
