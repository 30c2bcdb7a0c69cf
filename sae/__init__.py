"""BatchTopK SAEs per layer (SAELens): training, checked loading, metrics, layer sweep."""
