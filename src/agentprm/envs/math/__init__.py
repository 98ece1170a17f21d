"""The math step task (the paper's §5.3): GSM8K-style word problems, one reasoning step per turn.

`env.py` holds the env and its expert, `problems.py` the offline generator, `gsm8k.py` the loader for a
user's GSM8K file, `answer.py` the final-answer reading and comparison. See docs/math.md.
"""
