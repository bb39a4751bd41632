"""The built-in `lora_trainer` plugin: peft methods and full fine-tuning on a dataset artifact."""
