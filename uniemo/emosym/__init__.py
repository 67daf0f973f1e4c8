"""EmoSym (ACM MM 2025) beside UniEmo: a multimodal LLM whose added ``[EMO]`` and ``[CTX]`` tokens carry the
emotion and a compressed rationale (docs/method.md section 11).

- ``uniemo.emosym.losses``: the rationale InfoNCE (step 1) and the verifiable-reward objective with its
  adaptive-β KL anchor (step 2).
"""
