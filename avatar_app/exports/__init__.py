"""Files that carry a performance into other tools: ARKit curves (`arkit_files`) and glTF (`gltf`)."""
