"""CBIR workflows: the library calls behind `rsir index / search / eval cbir / train cbir / demo`."""
