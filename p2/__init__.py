"""P2: DDIM sampling through the course's pretrained face UNet."""
