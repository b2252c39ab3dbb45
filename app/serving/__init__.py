"""Online credit decisions on Ray Serve: one ingress deployment, routing, prediction log."""
