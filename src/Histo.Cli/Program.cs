using System.CommandLine;
using Histo.Cli;
using Histo.Cli.Commands;

var root = new RootCommand("Histo: computational pathology from whole-slide images to slide-level predictions.")
{
    InfoCommand.Create(),
    TissueCommand.Create(),
    TileCommand.Create(),
    EmbedCommand.Create(),
    EncodersCommand.Create(),
    TrainCommand.Create(),
    PredictCommand.Create(),
    HeatmapCommand.Create(),
    AugmentCommand.Create(),
    StainCommand.Create(),
    NucleiEvalCommand.Create(), NucleiCommand.Create(),
    PretrainCommand.Create(),
    DistillCommand.Create(),
    ServeCommand.Create(),
    StatusCommand.Create(),
    EvaluateCommands.Knn(), EvaluateCommands.FewShot(),
    EvaluateCommands.Probe(),
    TextCommands.Tokenize(), TextCommands.BpeTrain(), ZeroShotCommand.Create(), ClipTrainCommand.Create(),
    SynthCommand.Create(),
    DemoCommand.Create(),
};
return CliRunner.Invoke(root, args);
