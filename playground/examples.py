"""Example prompts shared by the app and the benchmark."""

EXAMPLE_PROMPTS: list[str] = [
    "Every effort moves you",
    "The capital of France is",
    "Once upon a time, there was a little robot who",
    "def fibonacci(n):",
    "Mr. and Mrs. Dursley, of number four, Privet Drive, were proud to say that they were perfectly normal,",
    "1, 2, 3, 4, 5,",
]
