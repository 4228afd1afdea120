"""Model families and the networks built around them (`model` group, conf/model/*.yaml); imports nothing.

    families.py  which families there are (one per conf/model/NAME.yaml) and what each module carries
    mlp.py       model=mlp: Dense blocks (the chapter's nets)
    cnn.py       model=cnn: convolutional blocks, pooling, a dense head
    resnet.py    model=resnet: a small residual net
    backbone.py  model=backbone: a keras.applications CNN with a new head
    parts.py     the knobs (initializer, activation, normalization, regularizer, augment) as layers
    blocks.py    the hidden blocks: naming layers `block{i}_...` and reading them back
    network.py   the whole network: a family's hidden stack plus the output layer (or a decoder)
    layers.py    our own serializable layers (registered where models are loaded: dnn_train/saving.py)
"""
