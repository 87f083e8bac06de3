"""Serving: live predictions, and (the seed's InferenceService) predictions with a cache."""
