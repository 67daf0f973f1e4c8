"""Emotion classifier: a CLIP ViT with scene and object expert queries (paper III-A, docs/method.md section 3).

Paper -> code:
    Q^Scene, Q^Object          -> ``scene_queries``, ``object_queries`` (K learnable tokens each)
    L1, L2                     -> ``split_layers`` (default N/3, 2N/3)
    Interactive Block (Eq. 2)  -> ``InteractiveBlock`` (cross-attention A + feed-forward F, pre-norm)
    β (Eq. 3)                  -> ``InteractiveBlock.beta`` (learnable, per channel): Q̂ = Q + β·Q̃
    T^Cls_N after final norm   -> ``cls_embed``; mean of Q̂^Scene_L1 -> ``scene_embed``; of Q̂^Object_L2 -> ``object_embed``
    W_S, W_O (Eq. 4)           -> ``scene_proj``, ``object_proj`` (pooled query -> CLIP text space)
    emotion head               -> ``head``: Linear(D, 768), ReLU, Dropout(0.5), Linear(768, classes)

The ViT layout and parameter names follow OpenAI CLIP (``conv1``, ``class_embedding``, ``positional_embedding``,
``ln_pre``, ``transformer.resblocks.i.{ln_1, attn.in_proj_*, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}``,
``ln_post``), so pretrained weights are a plain key map (``uniemo.clip.init_from_clip``). The architecture is
built from the config alone; nothing here touches the network.

Two readings of the method are config switches: the paper's (two-layer Interactive Blocks over the patch
tokens, β used) and the released code's (``variant="official"``: one layer, keys/values include CLS, no β, the
block output replaces the queries, frozen random contrastive projections); the config and its presets live in
``uniemo.classifier_config``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from uniemo.checkpoint import PretrainedMixin
# the config and the backbone presets are part of this module's interface (``from uniemo.classifier import ...``)
from uniemo.classifier_config import BACKBONE_PRESETS, VARIANTS, EmoClassifierConfig  # noqa: F401


# ----------------------------------------------------------------------------------------------------------
# Building blocks


class QuickGELU(nn.Module):
    """CLIP's activation, x * sigmoid(1.702 x) (OpenAI checkpoints were trained with it)."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with nn.MultiheadAttention's parameter names (OpenAI CLIP layout)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: Tensor) -> Tensor:
        B, N, D = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, N, 3D)
        q, k, v = qkv.view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, N, D/h)
        out = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, D/h)
        return self.out_proj(out.transpose(1, 2).reshape(B, N, D))


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.c_fc = nn.Linear(width, hidden)
        self.gelu = QuickGELU()
        self.c_proj = nn.Linear(hidden, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer block, as in CLIP's vision tower."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, eps: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=eps)
        self.attn = SelfAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width, eps=eps)
        self.mlp = MLP(width, int(width * mlp_ratio))
        self.grad_checkpointing = False  # EmoClassifier.set_grad_checkpointing

    def _forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def forward(self, x: Tensor) -> Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            # keep only the block's input; recompute its activations in backward
            return checkpoint(self._forward, x, use_reentrant=False)
        return self._forward(x)


class Transformer(nn.Module):
    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float, eps: float):
        super().__init__()
        self.resblocks = nn.ModuleList(
            [ResidualAttentionBlock(width, heads, mlp_ratio, eps) for _ in range(layers)]
        )


class CrossAttention(nn.Module):
    """Queries attend to image tokens. Q/K/V without bias, output projection with bias (official code).

    Returns the attention weights averaged over heads when asked; otherwise uses the fused kernel.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.out_proj = nn.Linear(width, width)

    def forward(self, queries: Tensor, context: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        B, Q, D = queries.shape
        N = context.shape[1]
        h = self.heads
        q = self.q_proj(queries).view(B, Q, h, D // h).transpose(1, 2)  # (B, h, Q, D/h)
        k = self.k_proj(context).view(B, N, h, D // h).transpose(1, 2)  # (B, h, N, D/h)
        v = self.v_proj(context).view(B, N, h, D // h).transpose(1, 2)
        if need_weights:
            attn = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(D // h), dim=-1)  # (B, h, Q, N)
            out = attn @ v
            weights = attn.mean(dim=1)  # (B, Q, N), averaged over heads
        else:
            out = F.scaled_dot_product_attention(q, k, v)
            weights = None
        return self.out_proj(out.transpose(1, 2).reshape(B, Q, D)), weights


class InteractiveLayer(nn.Module):
    """One layer of Eq. 2: Q̄ = Q + A(LN(Q), LN(T)); Q̃ = Q̄ + F(LN(Q̄)). No self-attention among queries."""

    def __init__(self, width: int, heads: int, mlp_ratio: float, eps: float):
        super().__init__()
        self.ln_q = nn.LayerNorm(width, eps=eps)
        self.cross_attn = CrossAttention(width, heads)
        self.ln_mlp = nn.LayerNorm(width, eps=eps)
        self.mlp = MLP(width, int(width * mlp_ratio))

    def forward(self, queries: Tensor, context: Tensor, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        attended, weights = self.cross_attn(self.ln_q(queries), context, need_weights)
        queries = queries + attended
        return queries + self.mlp(self.ln_mlp(queries)), weights


class InteractiveBlock(nn.Module):
    """The Interactive Block (Eq. 2) plus the β modulation of Eq. 3.

    Paper: Q̂ = Q + β·Q̃ with Q̃ the output of ``layers`` interactive layers and β a learnable per-channel
    vector (init 1e-4, the value of the official code's unused parameter). Official: Q̂ = Q̃.
    """

    def __init__(self, width: int, heads: int, layers: int, mlp_ratio: float, eps: float,
                 use_beta: bool, beta_init: float):
        super().__init__()
        self.ln_context = nn.LayerNorm(width, eps=eps)  # one norm on the key/value tokens (official code)
        self.layers = nn.ModuleList([InteractiveLayer(width, heads, mlp_ratio, eps) for _ in range(layers)])
        self.use_beta = use_beta
        self.beta = nn.Parameter(torch.full((width,), beta_init)) if use_beta else None

    def forward(self, queries: Tensor, context: Tensor, need_weights: bool = False) -> tuple[Tensor, Tensor | None]:
        """
        Args:
            queries: (B, Q, D) expert query tokens at the split layer.
            context: (B, N, D) the image tokens they attend to.
        Returns:
            refined queries (B, Q, D), and (B, N) attention over the context tokens (averaged over heads,
            queries and layers) when ``need_weights``, else None.
        """
        context = self.ln_context(context)
        refined, maps = queries, []
        for layer in self.layers:
            refined, weights = layer(refined, context, need_weights)
            if weights is not None:
                maps.append(weights.mean(dim=1))  # (B, N)
        out = queries + self.beta * refined if self.use_beta else refined
        return out, (torch.stack(maps).mean(0) if maps else None)


# ----------------------------------------------------------------------------------------------------------
# Outputs


@dataclass
class EmoFeatures:
    """What the encoder produces; fusion, the emotion space and the feedback scorer use these.

    cls_embed, scene_embed, object_embed: (B, D). scene_tokens, object_tokens: (B, K, D) refined queries.
    patch_tokens: (B, P, D) at the last layer. scene_attention / object_attention: (B, g, g) or None.
    """

    cls_embed: Tensor
    scene_embed: Tensor | None = None
    object_embed: Tensor | None = None
    scene_tokens: Tensor | None = None
    object_tokens: Tensor | None = None
    patch_tokens: Tensor | None = None
    scene_attention: Tensor | None = None
    object_attention: Tensor | None = None


@dataclass
class EmoClassifierOutput(EmoFeatures):
    logits: Tensor | None = None  # (B, num_classes)


# ----------------------------------------------------------------------------------------------------------
# The model


class EmoClassifier(nn.Module, PretrainedMixin):
    """CLIP ViT with the hierarchical chain of expert queries and an emotion head.

    Args:
        config: the architecture; ``EmoClassifier(config)`` never downloads anything. Pretrained CLIP
            weights come in through ``uniemo.clip.init_from_clip``; trained models through ``from_pretrained``.
    """

    config_class = EmoClassifierConfig

    def __init__(self, config: EmoClassifierConfig):
        super().__init__()
        config.validate()
        self.config = config
        D = config.width
        num_patches = config.grid_size ** 2
        # CLIP vision tower
        self.conv1 = nn.Conv2d(3, D, kernel_size=config.patch_size, stride=config.patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(D))
        self.positional_embedding = nn.Parameter(torch.zeros(num_patches + 1, D))
        self.ln_pre = nn.LayerNorm(D, eps=config.layer_norm_eps)
        self.transformer = Transformer(D, config.layers, config.heads, config.mlp_ratio, config.layer_norm_eps)
        self.ln_post = nn.LayerNorm(D, eps=config.layer_norm_eps)
        # expert queries, Interactive Blocks, contrastive projections
        if config.use_queries:
            block = lambda: InteractiveBlock(  # noqa: E731
                D, config.heads, config.interactive_layers, config.mlp_ratio, config.layer_norm_eps,
                config.use_beta, config.beta_init,
            )
            self.scene_queries = nn.Parameter(torch.zeros(config.num_scene_queries, D))
            self.object_queries = nn.Parameter(torch.zeros(config.num_object_queries, D))
            self.scene_block = block()
            self.object_block = block()
            self.scene_proj = nn.Linear(D, config.proj_dim, bias=False)
            self.object_proj = nn.Linear(D, config.proj_dim, bias=False)
            if not config.learnable_proj:
                self.scene_proj.requires_grad_(False)
                self.object_proj.requires_grad_(False)
        # emotion head on cls_embed
        self.head = nn.Sequential(
            nn.Linear(D, config.head_hidden), nn.ReLU(), nn.Dropout(config.head_dropout),
            nn.Linear(config.head_hidden, config.num_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        D = self.config.width
        # Backbone: OpenAI CLIP's own scheme (replaced by pretrained weights in practice).
        nn.init.normal_(self.class_embedding, std=D ** -0.5)
        nn.init.normal_(self.positional_embedding, std=0.01)
        attn_std = D ** -0.5
        proj_std = attn_std * (2 * self.config.layers) ** -0.5
        for blk in self.transformer.resblocks:
            nn.init.normal_(blk.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(blk.attn.out_proj.weight, std=proj_std)
            nn.init.zeros_(blk.attn.out_proj.bias)
            nn.init.normal_(blk.mlp.c_fc.weight, std=(2 * D) ** -0.5)
            nn.init.normal_(blk.mlp.c_proj.weight, std=proj_std)
        if self.config.use_queries:
            # Queries: the official nn.Embedding default, N(0, query_init_std^2) (1.0 by default).
            nn.init.normal_(self.scene_queries, std=self.config.query_init_std)
            nn.init.normal_(self.object_queries, std=self.config.query_init_std)
            # Interactive Blocks: trunc-normal 0.02 / zero bias, LayerNorm 1 / 0 (official _init_weights).
            for block in (self.scene_block, self.object_block):
                for m in block.modules():
                    if isinstance(m, nn.Linear):
                        nn.init.trunc_normal_(m.weight, std=0.02)
                        if m.bias is not None:
                            nn.init.zeros_(m.bias)
            # W_S, W_O: N(0, 1/D) keeps projected norms O(1); official frozen ones are N(0, 1) (the scale
            # does not matter after normalisation).
            nn.init.normal_(self.scene_proj.weight, std=D ** -0.5)
            nn.init.normal_(self.object_proj.weight, std=D ** -0.5)
        for m in self.head:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    # parameter groups for the optimiser (docs/method.md section 3: their own learning rates)
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each ViT block's activations in the backward pass instead of storing them (timm's name):
        less memory for a little more compute; results are unchanged."""
        for blk in self.transformer.resblocks:
            blk.grad_checkpointing = enable

    def parameter_groups(self) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """Named parameters split into ``backbone``, ``queries`` (queries + Interactive Blocks),
        ``projections`` and ``head``."""
        groups: dict[str, list] = {"backbone": [], "queries": [], "projections": [], "head": []}
        for name, p in self.named_parameters():
            if name.startswith(("scene_queries", "object_queries", "scene_block", "object_block")):
                groups["queries"].append((name, p))
            elif name.startswith(("scene_proj", "object_proj")):
                groups["projections"].append((name, p))
            elif name.startswith("head"):
                groups["head"].append((name, p))
            else:
                groups["backbone"].append((name, p))
        return groups

    def embed_tokens(self, pixel_values: Tensor) -> Tensor:
        """(B, 3, H, W) -> (B, 1 + P, D): patch embedding, class token, positional embedding, pre-norm."""
        x = self.conv1(pixel_values)  # (B, D, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B, P, D)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)  # (B, 1, D)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)  # (B, 1+P, D)
        return self.ln_pre(x)

    def forward_features(self, pixel_values: Tensor, return_attention: bool = False) -> EmoFeatures:
        """
        Args:
            pixel_values: (B, 3, H, W), normalised with ``config.image_mean/std``.
            return_attention: also return the scene and object attention maps (B, g, g), each normalised
                to sum to 1 over the patch grid. Costs an explicit softmax; off by default.
        """
        cfg = self.config
        x = self.embed_tokens(pixel_values)  # (B, 1+P, D)
        B, T, _ = x.shape  # T = 1 + P image tokens
        blocks = self.transformer.resblocks
        if not cfg.use_queries:
            for blk in blocks:
                x = blk(x)
            return EmoFeatures(cls_embed=self.ln_post(x[:, 0]), patch_tokens=x[:, 1:T])

        l1, l2 = cfg.resolved_split_layers
        kv_start = 1 if cfg.interactive_kv == "patch" else 0  # paper: patches only; official: CLS too
        Ks = cfg.num_scene_queries
        # Stage 1: layers 1..L1 over [CLS, patches, scene queries]
        x = torch.cat([x, self.scene_queries.to(x.dtype).expand(B, -1, -1)], dim=1)  # (B, T+Ks, D)
        for blk in blocks[:l1]:
            x = blk(x)
        scene, scene_map = self.scene_block(x[:, T:], x[:, kv_start:T], return_attention)  # (B, Ks, D)
        # Stage 2: append fresh object queries, layers L1+1..L2
        x = torch.cat([x[:, :T], scene, self.object_queries.to(x.dtype).expand(B, -1, -1)], dim=1)
        for blk in blocks[l1:l2]:
            x = blk(x)
        obj, object_map = self.object_block(x[:, T + Ks:], x[:, kv_start:T], return_attention)
        # Stage 3: layers L2+1..N over everything
        x = torch.cat([x[:, :T + Ks], obj], dim=1)  # (B, T+Ks+Ko, D)
        for blk in blocks[l2:]:
            x = blk(x)

        features = EmoFeatures(
            cls_embed=self.ln_post(x[:, 0]),
            scene_embed=scene.mean(dim=1),
            object_embed=obj.mean(dim=1),
            scene_tokens=scene,
            object_tokens=obj,
            patch_tokens=x[:, 1:T],
        )
        if return_attention:
            g = cfg.grid_size
            features.scene_attention = self._to_grid(scene_map, kv_start, g)
            features.object_attention = self._to_grid(object_map, kv_start, g)
        return features

    @staticmethod
    def _to_grid(weights: Tensor, kv_start: int, g: int) -> Tensor:
        patches = weights[:, 1 - kv_start:]  # drop the CLS column when it was a key
        patches = patches / patches.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return patches.reshape(-1, g, g)  # (B, g, g)

    def forward_head(self, cls_embed: Tensor) -> Tensor:
        """(B, D) -> emotion_logits (B, num_classes)."""
        return self.head(cls_embed)

    def forward(self, pixel_values: Tensor, return_attention: bool = False) -> EmoClassifierOutput:
        features = self.forward_features(pixel_values, return_attention=return_attention)
        return EmoClassifierOutput(**vars(features), logits=self.forward_head(features.cls_embed))

    def project_queries(self, features: EmoFeatures) -> tuple[Tensor, Tensor]:
        """Pooled queries -> L2-normalised points in CLIP text space: (normalize(W_S s), normalize(W_O o))."""
        if not self.config.use_queries:
            raise ValueError("this classifier was built with use_queries=false: it has no expert queries")
        return (
            F.normalize(self.scene_proj(features.scene_embed), dim=-1),
            F.normalize(self.object_proj(features.object_embed), dim=-1),
        )
