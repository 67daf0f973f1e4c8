"""The options of the UniEmo-Tiny build (``train/tiny_world.py``): the synthetic world, the tiny CLIP and tiny
Stable Diffusion pretrained on it, and UniEmo's own budget on top. No torch import here."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorldConfig:
    num_train: int = 4000
    num_val: int = 400
    num_test: int = 800
    image_size: int = 64  # stored EmoShapes images
    label_noise: float = 0.05


@dataclass
class ClipPretrainConfig:
    image_size: int = 32  # model input (EmoShapes images are downscaled)
    patch_size: int = 4  # 8 x 8 patch grid: the attention maps' resolution
    width: int = 64
    layers: int = 6
    heads: int = 4
    text_width: int = 64  # = the tiny SD's cross-attention width (its text encoder is this tower)
    text_layers: int = 3
    proj_dim: int = 64
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    # probabilities of the text kinds (caption, "a {object}", "{object}", "{scene}"): see caption_variant.
    # Short texts beside the captions lift the tiny CLIP's zero-shot object accuracy on val from 0.66 (captions
    # only, (1, 0, 0, 0)) to 0.95, and so the judge of transfer (README, "How UniEmo-Tiny was tuned")
    text_mix: tuple[float, ...] = (0.55, 0.15, 0.15, 0.15)


@dataclass
class SDPretrainConfig:
    # EmoShapes' own 64 px. Three blocks: 64 px -> 16 x 16 x 4 latents, so the UNet costs what it did at 32 px
    # with two blocks. Latents of 8 x 8 lose much of the objects: the tiny CLIP names an object of a real test
    # image 93.5 % of the time, of its 8 x 8 reconstruction 39.5 %, of its 16 x 16 one 85 % (measured at 32 px)
    resolution: int = 64
    vae_channels: tuple[int, ...] = (32, 64, 64)
    vae_steps: int = 1200
    vae_batch_size: int = 32
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6
    unet_channels: tuple[int, ...] = (64, 128, 128)
    # 5500 rather than 3000: transfer needs the SD to draw the look-alike nouns (a skull, not a ghost; a spider,
    # not a bomb). Plain SD, prompted with a noun, g 4, seeds 200-207: 68.0 % at 3000 steps, 78.9 % at 5500;
    # the bundle's transfer on seeds 100-103 rose from 48.2 % to 58.6 % (README, "How UniEmo-Tiny was tuned")
    unet_steps: int = 5500
    unet_batch_size: int = 32
    unet_lr: float = 1e-3
    norm_num_groups: int = 16
    caption_dropout: float = 0.1
    # text kinds as for the CLIP (caption, "a {object}", "{object}", "{scene}"); the short ones make the
    # prompts of transfer ("<emotion> {noun}") and of neutral ("{noun}") familiar to the tiny SD (captions only:
    # the plain SD shows the noun 27 % of the time; with these 62.5 %)
    text_mix: tuple[float, ...] = (0.7, 0.1, 0.1, 0.1)


@dataclass
class UniEmoBudget:
    stage1_epochs: int = 12
    stage1_batch_size: int = 64
    probe_epochs: int = 60
    joint_steps: int = 2000
    joint_batch_size: int = 32
    # stage 2's settings on top of train/configs/joint_emoshapes.yaml, as measured in the README ("How
    # UniEmo-Tiny was tuned"): L_cond at the official code's weight (at the paper's 0.3 the condition becomes an
    # emotion code that forgets the image), half the prompts naming an object, the UNet trained gently
    # two Gaussians per emotion in the emotion space: every EmoShapes emotion fills two (scene, object) cells, and
    # one Gaussian samples between them (amusement's cells average to sadness's; eval/tiny_diagnosis.py)
    joint_overrides: tuple[str, ...] = ("optim.lr_mappers=3e-3", "loss.condition=0.001", "object_prompt_fraction=0.5",
                                        "model.train_unet=true", "optim.lr_unet=5e-5", "emotion_space_components=2")


@dataclass
class TinyWorldConfig:
    out: str = "assets/uniemo-tiny"  # the model folder to write
    work_dir: str | None = None  # intermediate runs; null: runs/tiny-world (runs/tiny-world-smoke with --smoke)
    seed: int = 0
    smoke: bool = False  # tiny step counts everywhere (CI): minutes instead of an hour
    ablation: bool = True  # also train stage 1 without expert queries at the same budget
    # reuse the steps an earlier build in work_dir finished with the same settings (see STEPS): a step whose
    # settings, or those of a step it reads, changed is redone; stage 2 always runs
    resume: bool = False
    world: WorldConfig = field(default_factory=WorldConfig)
    clip: ClipPretrainConfig = field(default_factory=ClipPretrainConfig)
    sd: SDPretrainConfig = field(default_factory=SDPretrainConfig)
    uniemo: UniEmoBudget = field(default_factory=UniEmoBudget)
    threads: int = 2


# The tiny bundles' recommended sampling (their folders' "sampler"), measured by eval/tiny_report.py (README, "How
# UniEmo-Tiny was tuned"): space_scale 0.5 recognises more generated images as their emotion than 1.0; transfer
# weighs the noun on its own (composable guidance, UniEmoPipeline.transfer), else the condition's objects crowd
# it out, and guides the condition less (3 rather than 7.5: the tiny SD draws its objects more faithfully).
# Chosen at 64 px on transfer seeds 0 and 1 (2 images per pair, 256 in all): noun shown / emotion where the rule
# allows it, g 3 with g_n 6: 59.8 / 81.2 %, 7.5: 63.7 / 76.6 %, 9: 68.8 / 71.9 %, 12: 63.7 / 64.1 %; g 2 and 4 with
# g_n 9: 66.4 / 58.6 % and 63.3 / 76.6 %; g 4 with g_n 6: 52.7 / 82.8 %
TINY_SAMPLER = {"scheduler": "unipc", "num_inference_steps": 25, "guidance_scale": 7.5, "space_scale": 0.5,
                "transfer_guidance_scale": 3.0, "noun_guidance_scale": 9.0}
