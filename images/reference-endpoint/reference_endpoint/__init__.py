"""An OpenAI-compatible reference endpoint: SmolLM2-135M-Instruct on llama.cpp, tesseract OCR for images.

Modules: `cli` (flags, environment, uvicorn), `app` (routes), `protocol` (request and response models),
`errors` (OpenAI-style error bodies), `worker` (the one thread that runs the model), `engine` (the model:
tokens, prompt scoring, generation), `logprobs` and `sampling` (numpy over logits), `chat` (messages to a
prompt), `ocr` (data: URL images through tesseract), `completions` (the legacy completions route's answers),
`model_file` (finding the GGUF), `reference` (an independent prompt-logprob computation, for tests).
"""

MODEL_NAME = "SmolLM2-135M-Instruct"
"""The name the server answers to (`--served-model-name` changes it)."""
