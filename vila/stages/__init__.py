"""One module per node of the DAG (vila/pipeline.py's stage list), named as the stage is, each with one
`main(params, **wildcards)`: where the layers meet. What a stage computes lives in the library modules
(vila/data: files and datasets, knowing no model; vila/models: tensors, knowing no files; training, evaluation,
speed); a stage module reads the params, wires those together and names the stage's outputs."""
