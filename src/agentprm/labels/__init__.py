"""Step labels: the targets Q̂_t a PRM regresses on (TD-GAE, PVM, ORM, MC), as pure functions.

Every labeler also reports the sampled tokens it cost (the paper's Table 3 unit): `LabelRecord.sampled_tokens`.
"""

from agentprm.labels.outcome import LabelSettings, orm_labels, outcome_value, pvm_labels
from agentprm.labels.td_gae import BOOTSTRAPS, td_gae_closed_form, td_gae_linear, td_gae_targets

__all__ = [
    "BOOTSTRAPS",
    "LabelSettings",
    "orm_labels",
    "outcome_value",
    "pvm_labels",
    "td_gae_closed_form",
    "td_gae_linear",
    "td_gae_targets",
]
