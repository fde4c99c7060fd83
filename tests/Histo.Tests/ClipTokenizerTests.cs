using System.Text.Json;
using Histo.Text;

namespace Histo.Tests;

/// <summary>
/// CLIP's tokenizer and BPE training against <c>tools/reference/clip_tokenizer_reference.py</c> (written from OpenAI's
/// simple_tokenizer.py with the `regex` module, on the same merges file) and CLIP's published example.
/// </summary>
public class ClipTokenizerTests
{
    static JsonElement Golden()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(SharedData.RepoRoot, "tools", "reference", "golden",
            "clip-tokenizer-golden.json")));
        return doc.RootElement.Clone();
    }

    static readonly Lazy<ClipTokenizer> Clip = new(ClipTokenizer.Clip);

    static int[] Ids(JsonElement e) => e.EnumerateArray().Select(v => v.GetInt32()).ToArray();

    [Fact]
    public void PublishedExample()
    {
        // CLIP's README and every port: clip.tokenize("a photo of a cat").
        Assert.Equal(new[] { 49406, 320, 1125, 539, 320, 2368, 49407 }, Clip.Value.Tokenize("a photo of a cat"));
        Assert.Equal(49408, Clip.Value.Encoding.VocabularySize);
        var padded = Clip.Value.TokenizePadded("a photo of a cat");
        Assert.Equal(77, padded.Length);
        Assert.All(padded.Skip(7), v => Assert.Equal(0, v));
    }

    [Fact]
    public void SameIdsAsTheReferenceOnPathologyTextPunctuationDigitsAndNonAsciiLetters()
    {
        var cases = Golden().GetProperty("cases").EnumerateArray().ToList();
        Assert.True(cases.Count >= 200);
        var mismatches = cases
            .Where(c => !Ids(c.GetProperty("ids")).SequenceEqual(Clip.Value.Tokenize(c.GetProperty("text").GetString()!)))
            .Select(c => c.GetProperty("text").GetString()).ToList();
        Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {cases.Count} differ, e.g. \"{mismatches.FirstOrDefault()}\"");
    }

    [Fact]
    public void LongTextIsRefusedOrTruncatedEndingWithEndOfText()
    {
        var truncated = Golden().GetProperty("truncated");
        string text = truncated.GetProperty("text").GetString()!;
        var e = Assert.Throws<HistoException>(() => Clip.Value.Tokenize(text));
        Assert.Contains("longer than the context of 77", e.Message);
        var ids = Clip.Value.Tokenize(text, truncate: true);
        Assert.Equal(Ids(truncated.GetProperty("ids")), ids);
        Assert.Equal(49407, ids[^1]);
    }

    [Fact]
    public void BpeTrainingLearnsTheReferenceMergesAndTheTokenizerUsesThem()
    {
        var training = Golden().GetProperty("training");
        var corpus = training.GetProperty("corpus").EnumerateArray().Select(v => v.GetString()!).ToList();
        var merges = BpeTraining.Train(corpus, training.GetProperty("vocab_size").GetInt32());
        var expected = training.GetProperty("merges").EnumerateArray().Select(v => v.GetString()!).ToList();
        Assert.Equal(expected, merges.Select(m => m.First + " " + m.Second).ToList());
        var tokenizer = new ClipTokenizer(new BytePairEncoding(merges));
        foreach (var c in training.GetProperty("encoded").EnumerateArray())
            Assert.Equal(Ids(c.GetProperty("ids")), tokenizer.Tokenize(c.GetProperty("text").GetString()!));
    }

    [Fact]
    public void Cli_BpeTrainWritesMergesThatTokenizeReads()
    {
        using var dir = new TempDir();
        var training = Golden().GetProperty("training");
        File.WriteAllLines(dir["corpus.txt"], training.GetProperty("corpus").EnumerateArray().Select(v => v.GetString()!));
        var trained = Cli.Run("bpe-train", dir["corpus.txt"], "--vocab-size", training.GetProperty("vocab_size").GetInt32().ToString(),
            "-o", dir["bpe"]);
        Assert.True(trained.Code == 0, trained.Stderr);
        var first = training.GetProperty("encoded")[0];
        var run = Cli.Run("tokenize", first.GetProperty("text").GetString()!, "--tokenizer", dir["bpe"]);
        Assert.True(run.Code == 0, run.Stderr);
        Assert.Equal(string.Join(' ', Ids(first.GetProperty("ids"))), run.Stdout.Trim());

        var clip = Cli.Run("tokenize", "a photo of a cat", "it's H&E");
        Assert.Equal(0, clip.Code);
        Assert.Equal("49406 320 1125 539 320 2368 49407", clip.Stdout.Split('\n')[0]);

        // Too long: one error line, exit 1, and no ids printed for the texts before it either.
        var tooLong = Cli.Run("tokenize", "short", string.Join(' ', Enumerable.Repeat("tumour", 100)));
        Assert.Equal(1, tooLong.Code);
        Assert.Equal("", tooLong.Stdout);
        Assert.Contains("--truncate", tooLong.Stderr);
        Assert.Equal(2, Cli.Run("bpe-train", dir["corpus.txt"], "--vocab-size", "100", "-o", dir["small"]).Code);
        Assert.Equal(1, Cli.Run("tokenize", "x", "--tokenizer", dir["missing"]).Code);
        File.WriteAllText(dir["a-file"], "");
        var onFile = Cli.Run("bpe-train", dir["corpus.txt"], "--vocab-size", "600", "-o", dir["a-file"]);
        Assert.Equal(1, onFile.Code);
        Assert.Contains("choose another -o", onFile.Stderr);
    }
}
