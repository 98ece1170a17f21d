"""WebShop (Yao et al. 2022, as AgentGym serves it), simulated in-process without Java or pyserini.

`catalogue.py` real-data loader + goals, `synthetic.py` the offline default catalogue, `search.py` BM25,
`reward.py` WebShop's reward, `env.py` the env, `expert.py` the oracle shopper for demos.
"""
