"""The experiments the reports show, one module each; the stages run them."""
