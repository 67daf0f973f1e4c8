"""EmoSym (ACM MM 2025) beside UniEmo: a multimodal LLM whose added ``[EMO]`` and ``[CTX]`` tokens carry the
emotion and a compressed rationale (docs/method.md section 11).

- ``losses``: the rationale InfoNCE (step 1) and the verifiable-reward objective with its adaptive-β KL (step 2);
- ``mllm``: the Qwen2-VL reasoning model (transformers' classes, peft's LoRA), its tokens, heads and trained parts;
- ``rationales``: the knowledge base (EmoShapes' rule, a JSONL file, attribute templates);
- ``tiny_mllm`` and ``tiny_pretrain``: the tiny Qwen2-VL of the synthetic world and its caption pretraining;
- ``model_folder``: the EmoSym model folder, written and read, and ``explain`` (probabilities and the nearest
  rationales).

The steps' training runs are ``uniemo.training.emosym_compress`` and ``uniemo.training.emosym_reward``.
"""
