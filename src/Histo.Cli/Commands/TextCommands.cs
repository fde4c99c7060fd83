using System.CommandLine;
using Histo.Text;

namespace Histo.Cli.Commands;

/// <summary><c>histo tokenize</c> and <c>histo bpe-train</c>: the text side of vision-language models.</summary>
static class TextCommands
{
    public static Command Tokenize()
    {
        var texts = new Argument<string[]>("texts") { Description = "Texts to tokenize, one line of ids each.",
            Arity = ArgumentArity.OneOrMore };
        var tokenizer = new Option<string>("--tokenizer") { Description = "clip (OpenAI CLIP's vocabulary), a merges file, or a "
            + "folder written by histo bpe-train.", DefaultValueFactory = _ => "clip" };
        var context = new Option<int>("--context") { Description = "Context length (CLIP: 77).",
            DefaultValueFactory = _ => ClipTokenizer.DefaultContext };
        var truncate = new Option<bool>("--truncate") { Description = "Cut text longer than the context (the last id is then "
            + "end-of-text) instead of refusing it." };
        var pad = new Option<bool>("--pad") { Description = "Pad each line with 0 to the context length, as the text tower reads it." };
        var command = new Command("tokenize", "Print the token ids of texts (start-of-text, the text, end-of-text), as CLIP's "
            + "clip.tokenize gives them.") { texts, tokenizer, context, truncate, pad };
        command.SetAction(CliRunner.Guard(parse =>
        {
            int n = parse.GetValue(context);
            Require.AtLeast("--context", n, 2);
            var t = ClipTokenizer.Load(parse.GetValue(tokenizer)!);
            // Every text is checked before any line is printed: a refused text leaves no partial output.
            var rows = parse.GetValue(texts)!.Select(text => parse.GetValue(pad)
                ? t.TokenizePadded(text, n, parse.GetValue(truncate))
                : t.Tokenize(text, n, parse.GetValue(truncate)).Select(i => (long)i).ToArray()).ToList();
            foreach (var row in rows) Console.WriteLine(string.Join(' ', row));
            return 0;
        }));
        return command;
    }

    public static Command BpeTrain()
    {
        var corpus = new Argument<FileInfo>("corpus") { Description = "Text file, one document or sentence per line." };
        var vocabSize = new Option<int>("--vocab-size") { Description = "Vocabulary size: 514 (bytes, word-final bytes, start and "
            + "end of text) plus the merges learnt.", Required = true };
        var output = new Option<DirectoryInfo>("--output", "-o") { Description = "Folder for merges.txt (--tokenizer DIR reads it).",
            Required = true };
        var command = new Command("bpe-train", "Learn byte-pair merges from a corpus: from bytes, repeatedly merge the most "
            + "frequent adjacent pair until the vocabulary size.") { corpus, vocabSize, output };
        command.SetAction(CliRunner.Guard(parse =>
        {
            var (merges, path) = BpeTraining.TrainFile(parse.GetValue(corpus)!.FullName, parse.GetValue(vocabSize),
                parse.GetValue(output)!.FullName);
            Console.WriteLine($"{merges} merges, vocabulary {BpeTraining.BaseVocabularySize + merges} -> {path}");
            return 0;
        }));
        return command;
    }
}
