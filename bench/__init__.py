"""`make bench`: accuracy and speed of crnnocr beside its peers on ../shared/eval (see bench/README.md)."""
