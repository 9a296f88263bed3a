"""The model factory: batch scoring (`score`), retraining behind data guards and a champion."""
