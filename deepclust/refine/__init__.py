"""Self-labelling refinement after any method's training (SCAN, Van Gansbeke et al., ECCV 2020,
Sec. 3.2): the configuration's ``refine`` section, ``deepclust fit --refine``; see
docs/REFINE_AND_ENSEMBLE.md."""
from deepclust.refine.model import CosineHead, RefinedModel, parameters_used_by, strong_augmentation
from deepclust.refine.selection import COUNT_RULES, Selection, balanced_selection, class_means
from deepclust.refine.stage import REFINE_FOLDER, refine_config, refinement_due, run_refinement, without_refine

__all__ = ["COUNT_RULES", "CosineHead", "REFINE_FOLDER", "RefinedModel", "Selection", "balanced_selection",
           "class_means", "parameters_used_by", "refine_config", "refinement_due", "run_refinement",
           "strong_augmentation", "without_refine"]
