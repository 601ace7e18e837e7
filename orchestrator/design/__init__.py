"""`research design`: a designer agent drafts a protocol from a question, stage by stage, each
stage checked by the real loader and approved (or rejected with a note, or edited) by a human."""
