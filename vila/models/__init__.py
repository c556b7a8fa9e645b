"""Models: the InstructBLIP video backbone, the Frame-Prompter and the QFormer-Distiller."""
