"""Small samples of every source in its real download format, generated deterministically by code (no
third-party text): used by the tests and by the end-to-end demo. `<source>.write_sample(directory)` writes
one and returns the `--input` to give that source's job."""
