"""The model: training data, Keras idioms, the linear fold, training and the registry."""
