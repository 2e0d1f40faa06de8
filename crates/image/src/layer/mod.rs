//! Layers: apply a layer tar into a directory, diff a directory back into a layer (filled in by the layer work).
