//! Neural-network building blocks (layers, losses, optimisers) on ndarray.
