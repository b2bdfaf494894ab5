"""Text-to-motion metrics: the five T2M scores and the networks that embed motions and captions
(the published T2M evaluator, a trainable evaluator for other datasets)."""
