import torch, torchvision, cft

model = torchvision.models.resnet18(num_classes=20)  # your multi-label model: load its trained weights here
model.eval()
backbone = torch.nn.Sequential(*list(model.children())[:-1], torch.nn.Flatten())
images = torch.rand(512, 3, 224, 224)                 # your images, preprocessed as in training
labels = (torch.rand(512, 20) < 0.2).float()          # 1 / 0 known, -1 uncertain, NaN unknown
labels = cft.drop_labels(labels, 0.3)                 # here: keep 30% of them known
with torch.no_grad():
    features = backbone(images)                       # [512, 512]
train, valid = slice(0, 384), slice(384, 512)
result = cft.finetune(features[train], labels[train], features[valid], labels[valid],
                      model.fc.weight, model.fc.bias, method="ga", max_epochs=200, patience=30)
model.fc.load_state_dict(result.state_dict())
print(result.table()[["category", "best_epoch", "original_score", "best_score"]].head())
